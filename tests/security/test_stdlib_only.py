"""``telepayd/security/`` imports only the standard library (and itself), so it can be audited alone."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import telepayd.security

PACKAGE = Path(telepayd.security.__file__).parent


def test_security_core_imports_only_the_standard_library():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 1:
                    offenders.append(f"{path.name}: reaches outside the package with a relative import")
                names = [node.module] if node.level == 0 and node.module else []
            else:
                continue
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] not in sys.stdlib_module_names]
    assert offenders == []
    assert len(list(PACKAGE.glob("*.py"))) >= 7

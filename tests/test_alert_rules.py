"""The shipped alert rules: valid for Prometheus (``promtool check rules``) and firing when they should
(``promtool test rules`` on tests/prometheus/). CI installs Debian's prometheus package for promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "packaging" / "prometheus" / "telepayd-alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus; .ci/run does)")


def metric_names_in_rules() -> set[str]:
    return set(re.findall(r"\btelepayd_[a-z_]+\b", RULES.read_text()))


@needs_promtool
def test_promtool_accepts_the_rules():
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


@needs_promtool
def test_each_alert_fires_when_it_should_and_only_then():
    result = subprocess.run([PROMTOOL, "test", "rules", "telepayd-alerts.test.yml"], capture_output=True, text=True,
                            cwd=ROOT / "tests" / "prometheus")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested():
    alerts = set(re.findall(r"alert: (\w+)", RULES.read_text()))
    tested = set(re.findall(r"alertname: (\w+)", (ROOT / "tests" / "prometheus" / "telepayd-alerts.test.yml").read_text()))
    assert alerts == tested and len(alerts) == 10

"""JSON parsing for untrusted bodies: UTF-8 only, no NaN/Infinity, amounts as ``Decimal``, depth-safe."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


class JSONBodyError(ValueError):
    """The body is not acceptable JSON; the message is safe to show the caller."""


def reject_constant(name: str) -> Any:
    raise JSONBodyError(f"{name} is not a JSON number.")


def parse_json(body: bytes, *, decimals: bool = True) -> Any:
    """Parse ``body`` (fractions as ``Decimal`` unless ``decimals`` is false); raise ``JSONBodyError``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONBodyError("The body is not valid UTF-8.") from None
    try:
        return json.loads(text, parse_float=Decimal if decimals else float, parse_constant=reject_constant)
    except JSONBodyError:
        raise
    except RecursionError:
        raise JSONBodyError("The body is nested too deeply.") from None
    except json.JSONDecodeError as exc:
        raise JSONBodyError(f"The body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}).") from None
    except ValueError:
        # int() refuses numbers longer than sys.get_int_max_str_digits().
        raise JSONBodyError("The body holds a number that is too long.") from None


def parse_json_object(body: bytes, *, decimals: bool = True) -> dict[str, Any]:
    """Parse ``body`` and require a JSON object at the top level."""
    value = parse_json(body, decimals=decimals)
    if not isinstance(value, dict):
        raise JSONBodyError("The body must be a JSON object.")
    return value

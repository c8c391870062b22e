"""JSON parsing for untrusted bodies: UTF-8 only, no NaN/Infinity, no unpaired surrogates, amounts as
``Decimal``, depth-safe, and optionally bounded in shape (keys, objects and arrays, depth)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Raw UTF-8 cannot hold a surrogate (decoding refuses it): only a \uD800-\uDFFF escape can produce one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONBodyError(ValueError):
    """The body is not acceptable JSON; the message is safe to show the caller."""


def reject_constant(name: str) -> Any:
    raise JSONBodyError(f"{name} is not a JSON number.")


@dataclass(frozen=True)
class Shape:
    """Bounds on a document's shape, checked before anything else is done with it."""

    max_depth: int
    max_keys: int  # object members, all objects together
    max_containers: int  # objects and arrays together
    max_items: int  # array items, all arrays together


def check_document(value: Any, shape: Shape | None = None, *, surrogates: bool = True) -> None:
    """Raise ``JSONBodyError`` when ``value`` exceeds ``shape`` or (``surrogates``) holds an unpaired surrogate.

    One pass, no recursion: the cost is linear in the document and stops at the first excess."""
    keys = containers = items = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if surrogates and not item.isascii() and _SURROGATE.search(item):
                raise JSONBodyError("The body holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not text.")
            continue
        if not isinstance(item, (dict, list)):
            continue
        containers += 1
        if shape is not None:
            if depth > shape.max_depth:
                raise JSONBodyError(f"The body is nested deeper than {shape.max_depth} levels.")
            if containers > shape.max_containers:
                raise JSONBodyError(f"The body holds more than {shape.max_containers} objects and arrays.")
        if isinstance(item, dict):
            keys += len(item)
            if shape is not None and keys > shape.max_keys:
                raise JSONBodyError(f"The body holds more than {shape.max_keys} keys.")
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        else:
            items += len(item)
            if shape is not None and items > shape.max_items:
                raise JSONBodyError(f"The body holds more than {shape.max_items} array items.")
            stack.extend((v, depth + 1) for v in item)


def may_hold_surrogates(body: bytes) -> bool:
    """Cheap test on the raw body: False means no parsed string can hold a surrogate."""
    return _SURROGATE_ESCAPE.search(body) is not None


# Built once: json.loads with any hook builds a decoder and its scanner on every call (2 of a notification's
# 5 us of parsing).
_DECODERS = {
    True: json.JSONDecoder(parse_float=Decimal, parse_constant=reject_constant),
    False: json.JSONDecoder(parse_float=float, parse_constant=reject_constant),
}


def parse_json(body: bytes, *, decimals: bool = True) -> Any:
    """Parse ``body`` (fractions as ``Decimal`` unless ``decimals`` is false); raise ``JSONBodyError``."""
    value = _loads(body, _DECODERS[decimals])
    if may_hold_surrogates(body):
        check_document(value)
    return value


def _loads(body: bytes, decoder: json.JSONDecoder) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JSONBodyError("The body is not valid UTF-8.") from None
    if text.startswith("\ufeff"):  # json.loads says so; the decoder alone would only say "Expecting value"
        raise JSONBodyError("The body starts with a byte order mark (BOM); send JSON without one.")
    try:
        return decoder.decode(text)
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

"""JSON text read without any parser recursing past what it can: request bodies and
WebSocket messages (``decode``), values read back from the database (``load_stored``).

Python's own JSON decoder and encoder, and every walk over a value written as a
recursive function, fail with ``RecursionError`` somewhere below 1,000 levels; orjson
refuses more than 1,024 levels when decoding and 254 when encoding. So nesting is
bounded where JSON comes in (a request, a message, an import: ``Settings.
max_request_json_depth`` for the whole text, ``max_json_depth`` for a stored value),
by checks that do not recurse themselves. What is already stored may be deeper (it
was written before the limits existed, or by SQL): such a value reads back as the
``omitted`` placeholder rather than failing the read.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: Deepest stored JSON value read back as it is; a deeper one reads as ``omitted``.
#: With the levels of a response around it, the response stays within orjson's 254.
READABLE_DEPTH = 200
#: The key of the placeholder object a stored value too deep to read back becomes.
OMITTED_KEY = "$omitted"

_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
#: A \\uD800-\\uDFFF escape that is an escape (after an even run of backslashes).
_SURROGATE = re.compile(r"(?<!\\)((?:\\\\)*+)\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class Refused(ValueError):
    """Text that is not JSON the API takes; ``reason`` completes "The request body ..."."""

    def __init__(self, reason: str, *, surrogate: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        #: The text is JSON but for a lone UTF-16 surrogate: ``without_surrogates`` reads it.
        self.surrogate = surrogate


def decode(text: str | bytes, *, max_depth: int) -> Any:
    """The value of ``text``, strictly as RFC 8259 has it (UTF-8, no lone surrogates, no
    NaN), nested at most ``max_depth`` levels; ``Refused`` otherwise.

    orjson decodes first: it refuses more than 1,024 levels by itself, without
    recursing in Python, whatever the depth of the text. The finer limit is then
    checked on the value, without recursion, only when the text has enough brackets
    to exceed it.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        message = str(error)
        if message.startswith("depth limit exceeded"):
            raise Refused(_too_deep(max_depth)) from None
        if "surrogate" in message:
            raise Refused(
                "holds a lone UTF-16 surrogate (\\ud800 to \\udfff), not Unicode text",
                surrogate=True,
            ) from None
        if "UTF-8" in message:
            raise Refused("is not UTF-8 text") from None
        raise Refused(f"is not valid JSON ({message})") from None
    if _brackets(text) > max_depth and deeper_than(value, max_depth):
        raise Refused(_too_deep(max_depth))
    return value


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate escape replaced by U+FFFD's, to read which
    operation a refused message was (its id), never to run it."""
    return _SURROGATE.sub(r"\1\\ufffd", text)


def _too_deep(max_depth: int) -> str:
    return f"is nested more than {max_depth} levels deep"


def _brackets(text: str | bytes) -> int:
    """How many containers ``text`` can hold at most (brackets in strings counted too)."""
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


def depth(value: Any) -> int:
    """Levels of nesting, without recursion: 0 for a scalar, 1 for ``[]`` or ``{"a": 1}``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        pending.extend((child, level + 1) for child in item if isinstance(child, dict | list))
    return deepest


def deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` levels (stops at the first that does)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if level > limit:
            return True
        pending.extend((child, level + 1) for child in item if isinstance(child, dict | list))
    return False


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``: a scan of the text,
    no parsing, for a parser that would recurse (the importer's ``json.loads``)."""
    if _brackets(text) <= limit:
        return False
    level = 0
    for bracket in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        if bracket in "[{":
            level += 1
            if level > limit:
                return True
        else:
            level -= 1
    return False


def omitted() -> dict[str, str]:
    """The placeholder of a stored value too deep to read back (a new object each time:
    a caller may change it)."""
    return {
        OMITTED_KEY: f"not shown: a JSON value nested more than {READABLE_DEPTH} levels "
        "deep, stored before nesting was limited"
    }


def load_stored(text: str) -> Any:
    """A stored JSON document's value; ``omitted`` when it nests deeper than
    ``READABLE_DEPTH``, so that no later step (the JSON scalar, the response's encoder)
    meets a value it cannot take. A ``ValueError`` for text that is not JSON.

    The standard library decodes (orjson reads integers past 64 bits otherwise); it
    recurses, so text a thousand levels deep stops it with a ``RecursionError``, raised
    before any value is built and only ever past ``READABLE_DEPTH``: that text is
    ``omitted`` too.
    """
    if _brackets(text) <= READABLE_DEPTH:
        return json.loads(text)
    try:
        value = json.loads(text)
    except RecursionError:
        return omitted()
    if deeper_than(value, READABLE_DEPTH):
        return omitted()
    return value

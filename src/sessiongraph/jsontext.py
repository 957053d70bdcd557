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

#: Every byte but brackets and quotes, deleted by ``nesting_exceeds``.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_SQUARE = bytes.maketrans(b"{}", b"[]")
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
    checked on the text (``nesting_exceeds``), which is JSON by then.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        message = str(error)
        # "depth limit exceeded" (orjson 3.10.x later releases) or "array and object
        # recursion depth exceeded" (earlier ones).
        if "depth" in message and "exceeded" in message:
            raise Refused(_too_deep(max_depth)) from None
        if message.startswith("str is not valid UTF-8"):  # it says "surrogates" too
            raise Refused("is not UTF-8 text") from None
        if "surrogate" in message:
            raise Refused(
                "holds a lone UTF-16 surrogate (\\ud800 to \\udfff), not Unicode text",
                surrogate=True,
            ) from None
        raise Refused(f"is not valid JSON ({message})") from None
    if nesting_exceeds(text, max_depth):
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


def nesting_exceeds(text: str | bytes, limit: int) -> bool:
    """Whether the brackets of JSON ``text`` nest deeper than ``limit`` outside strings: a
    scan of the text with bytes operations, no parsing and no recursion.

    Escaped backslashes and quotes go first, then everything but brackets and quotes,
    then what is between quotes; with all brackets made square, each round of removing
    ``[]`` pairs takes exactly one level off (the innermost containers are empty by
    then). About as fast as orjson decodes a body of usual depth. Text that is not JSON
    (a line not finished, garbage) may leave brackets no round removes: those still open
    at its end count on top of the levels taken off, so the answer never says a text a
    parser would recurse into too deeply is shallow.
    """
    if _brackets(text) <= limit:
        return False
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = raw.translate(None, _NOT_STRUCTURE)
    if b'"' in brackets:
        brackets = b"".join(brackets.split(b'"')[::2])
    brackets = brackets.translate(_SQUARE)
    if brackets.count(b"[") <= limit:
        return False
    for level in range(limit):
        peeled = brackets.replace(b"[]", b"")
        if not peeled:
            return False
        if peeled == brackets:  # left: closing brackets, then opening ones
            return level + peeled.count(b"[") > limit
        brackets = peeled
    return True


def omitted() -> dict[str, str]:
    """The placeholder of a stored value too deep to read back (a new object each time:
    a caller may change it)."""
    return {
        OMITTED_KEY: f"not shown: a JSON value nested more than {READABLE_DEPTH} levels "
        "deep, stored before nesting was limited"
    }


def load_stored(text: str) -> Any:
    """A stored JSON document's value; ``omitted`` when it nests deeper than
    ``READABLE_DEPTH``, so that no later step (the standard library's decoder, which
    recurses, the JSON scalar, the response's encoder) meets a value it cannot take.
    A ``ValueError`` for text that is not JSON."""
    if nesting_exceeds(text, READABLE_DEPTH):
        return omitted()
    return json.loads(text)

"""Compact, human-readable labels for token counts, costs, durations, phases, models and repos."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal

DASH = "\u2014"

_UUID = re.compile(r"([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# [0-9] rather than \d: \d would also accept non-ASCII digits.
_VERSION_PART = re.compile(r"[0-9]{1,2}")
_CLAUDE_PREFIX = "claude-"


def format_tokens(n: int | None) -> str:
    """None -> dash; below 1,000 as is; below 1,000,000 as ``1.2k``; otherwise as ``1.5M``."""
    if n is None:
        return DASH
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def format_total_tokens(n: int) -> str:
    """A sum of tokens: ``format_tokens``, and from 1,000,000,000 ``5.6B``."""
    if n < 1_000_000_000:
        return format_tokens(n)
    return f"{n / 1_000_000_000:.1f}B"


def format_total_cost(usd: Decimal) -> str:
    """A sum of costs: ``format_cost``, and from $1,000,000 ``$3.4M``."""
    if usd < 1_000_000:
        return format_cost(usd)
    return f"${usd / 1_000_000:.1f}M"


def format_cost(usd: Decimal | float | int | str | None) -> str:
    """None -> dash; ``$0.00``, ``<$0.01``, ``$12.50`` or ``$1.2k``; negatives prefixed ``-``."""
    if usd is None:
        return DASH
    # Through str() so a float is taken as it prints (0.1, not its binary expansion).
    value = Decimal(str(usd))
    if value < 0:
        return "-" + format_cost(-value)
    if value == 0:
        return "$0.00"
    if value < Decimal("0.01"):
        return "<$0.01"
    if value < 1000:
        return f"${value:.2f}"
    return f"${value / 1000:.1f}k"


def format_duration_seconds(s: float | None) -> str:
    """None -> dash; under 1s -> ``<1s``; else ``59s``, ``2m 14s`` / ``1m``, ``1h 2m`` / ``1h``."""
    # NaN and +inf have no meaningful duration, so they read as "unknown"; -inf is just "< 1".
    if s is None or math.isnan(s) or s == math.inf:
        return DASH
    if s < 1:
        return "<1s"
    total = int(s)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        minutes, seconds = divmod(total, 60)
        return f"{minutes}m {seconds}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(total // 60, 60)
    return f"{hours}h {minutes}m" if minutes else f"{hours}h"


def format_phase(phase_id: str | None) -> str | None:
    """A UUID -> ``Phase`` + its first group; otherwise ``_``/``-`` to spaces, words capitalized."""
    if phase_id is None:
        return None
    stripped = phase_id.strip()
    match = _UUID.fullmatch(stripped)
    if match:
        return f"Phase {match.group(1)}"
    words = stripped.replace("_", " ").replace("-", " ").split()
    if not words:
        return stripped
    return " ".join(w[:1].upper() + w[1:].lower() for w in words)


def format_model_compact(model: str | None) -> str | None:
    """``claude-<family>-<n>[-<n>...]`` with 1-2 digit numbers -> ``Family n.n``; else unchanged."""
    if model is None:
        return None
    stripped = model.strip()
    if not stripped.startswith(_CLAUDE_PREFIX):
        return stripped
    family, *numbers = stripped[len(_CLAUDE_PREFIX) :].split("-")
    # An empty family ("claude--4") would render as " 4", so it is left unchanged too.
    if not family or not numbers or not all(_VERSION_PART.fullmatch(p) for p in numbers):
        return stripped
    return f"{family.title()} {'.'.join(numbers)}"


def format_repos(repos: Sequence[str] | None) -> str | None:
    """First repo's name after its owner (``acme/foo`` -> ``foo``), plus ``+n`` for the others."""
    if not repos:
        return None
    entries = [r.strip() for r in repos if r.strip()]
    if not entries:
        return None
    label = entries[0].partition("/")[2] or entries[0]
    return label if len(entries) == 1 else f"{label} +{len(entries) - 1}"

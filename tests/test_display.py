"""Tests for the display formatting rules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

import pytest

from sessiongraph.db import filtering
from sessiongraph.display import (
    format_cost,
    format_duration_seconds,
    format_model_compact,
    format_phase,
    format_repos,
    format_tokens,
)

DASH = "\u2014"


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        pytest.param(None, DASH, id="none"),
        pytest.param(0, "0", id="zero"),
        pytest.param(742, "742", id="742"),
        pytest.param(999, "999", id="999"),
        pytest.param(1000, "1.0k", id="1000"),
        pytest.param(1237, "1.2k", id="1237"),
        pytest.param(12500, "12.5k", id="12500"),
        pytest.param(999999, "1000.0k", id="999999-stays-k"),
        pytest.param(1000000, "1.0M", id="1000000"),
        pytest.param(1500000, "1.5M", id="1500000"),
        pytest.param(-5, "-5", id="negative-small"),
        pytest.param(-1500, "-1500", id="negative-large-unscaled"),
        # n / 1000 is a float: 1.25 is exact and ties to even, 1.05 is stored slightly above.
        pytest.param(1250, "1.2k", id="tie-to-even-1250"),
        pytest.param(1050, "1.1k", id="float-value-1050"),
    ],
)
def test_format_tokens(n: int | None, expected: str) -> None:
    assert format_tokens(n) == expected


@pytest.mark.parametrize(
    ("usd", "expected"),
    [
        pytest.param(None, DASH, id="none"),
        pytest.param(0, "$0.00", id="zero"),
        pytest.param(0.001, "<$0.01", id="0.001"),
        pytest.param(0.0049, "<$0.01", id="0.0049"),
        pytest.param(0.005, "<$0.01", id="0.005"),
        pytest.param(0.01, "$0.01", id="0.01"),
        pytest.param(0.0438, "$0.04", id="0.0438"),
        pytest.param(1.234, "$1.23", id="1.234"),
        pytest.param(12.5, "$12.50", id="12.5"),
        pytest.param(999.99, "$999.99", id="999.99"),
        pytest.param(1000, "$1.0k", id="1000"),
        pytest.param(1234.5, "$1.2k", id="1234.5"),
        pytest.param(-0.05, "-$0.05", id="negative"),
        pytest.param(-0.001, "-<$0.01", id="negative-tiny"),
        # Below 1000, so two decimals, which Decimal formatting rounds up to 1000.00.
        pytest.param(999.999, "$1000.00", id="999.999-rounds-up"),
        pytest.param(Decimal("999.995"), "$1000.00", id="999.995-half-even"),
        pytest.param(Decimal("0.125"), "$0.12", id="decimal-half-even-down"),
        pytest.param(Decimal("12.345"), "$12.34", id="decimal-input"),
        pytest.param(2.675, "$2.68", id="float-taken-as-printed"),
        pytest.param(7, "$7.00", id="int-input"),
        pytest.param("3.5", "$3.50", id="str-input"),
        pytest.param(Decimal("-0"), "$0.00", id="negative-zero"),
        pytest.param(0.0, "$0.00", id="float-zero"),
    ],
)
def test_format_cost(usd: Decimal | float | int | str | None, expected: str) -> None:
    assert format_cost(usd) == expected


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        pytest.param(None, DASH, id="none"),
        pytest.param(0.4, "<1s", id="0.4"),
        pytest.param(0, "<1s", id="zero"),
        pytest.param(-3.0, "<1s", id="negative"),
        pytest.param(1.9, "1s", id="1.9-truncated"),
        pytest.param(59.99, "59s", id="59.99"),
        pytest.param(60, "1m", id="60"),
        pytest.param(61, "1m 1s", id="61"),
        pytest.param(134.2, "2m 14s", id="134.2"),
        pytest.param(3599.9, "59m 59s", id="3599.9"),
        pytest.param(3600, "1h", id="3600"),
        pytest.param(3659, "1h", id="3659-seconds-dropped"),
        pytest.param(3725, "1h 2m", id="3725"),
        pytest.param(90061, "25h 1m", id="90061-no-days"),
        pytest.param(math.nan, DASH, id="nan"),
        pytest.param(math.inf, DASH, id="inf"),
        pytest.param(-math.inf, "<1s", id="minus-inf"),
    ],
)
def test_format_duration_seconds(s: float | None, expected: str) -> None:
    assert format_duration_seconds(s) == expected


@pytest.mark.parametrize(
    ("phase_id", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("", "", id="empty"),
        pytest.param("   ", "", id="whitespace-only"),
        pytest.param("detect", "Detect", id="detect"),
        pytest.param("research_phase", "Research Phase", id="underscore"),
        pytest.param("fix-bug", "Fix Bug", id="dash"),
        pytest.param("ALREADY_TITLED", "Already Titled", id="upper"),
        pytest.param("phase-1", "Phase 1", id="digit-word"),
        pytest.param("  a__b--c  ", "A B C", id="repeated-separators"),
        pytest.param("--__", "--__", id="only-separators"),
        pytest.param(" -_ ", "-_", id="only-separators-stripped"),
        pytest.param("39574120-df6e-4043-a2aa-58be12c9ae51", "Phase 39574120", id="uuid"),
        pytest.param("ABCDEF12-DF6E-4043-A2AA-58BE12C9AE51", "Phase ABCDEF12", id="uuid-upper"),
        pytest.param(" 39574120-df6e-4043-a2aa-58be12c9ae51 ", "Phase 39574120", id="uuid-padded"),
        pytest.param(
            "39574120-df6e-4043-a2aa-58be12c9ae5",
            "39574120 Df6e 4043 A2aa 58be12c9ae5",
            id="uuid-too-short",
        ),
        pytest.param(
            "g9574120-df6e-4043-a2aa-58be12c9ae51",
            "G9574120 Df6e 4043 A2aa 58be12c9ae51",
            id="uuid-not-hex",
        ),
    ],
)
def test_format_phase(phase_id: str | None, expected: str | None) -> None:
    assert format_phase(phase_id) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("", "", id="empty"),
        pytest.param("   ", "", id="whitespace-only"),
        pytest.param("claude-sonnet-4-6", "Sonnet 4.6", id="sonnet-4-6"),
        pytest.param("claude-opus-4-7", "Opus 4.7", id="opus-4-7"),
        pytest.param("claude-sonnet-4", "Sonnet 4", id="sonnet-4"),
        pytest.param("  claude-haiku-4-5  ", "Haiku 4.5", id="padded"),
        pytest.param("claude-opus-4-20250514", "claude-opus-4-20250514", id="dated"),
        pytest.param("claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022", id="old-style"),
        pytest.param("gpt-4o", "gpt-4o", id="other-vendor"),
        pytest.param("  gpt-4o ", "gpt-4o", id="other-vendor-padded"),
        pytest.param("claude-sonnet", "claude-sonnet", id="no-version"),
        pytest.param("claude-sonnet-4-", "claude-sonnet-4-", id="trailing-dash"),
        pytest.param("claude--4", "claude--4", id="empty-family"),
        pytest.param("claude-opus-\u0664", "claude-opus-\u0664", id="non-ascii-digit"),
        pytest.param("Claude-sonnet-4", "Claude-sonnet-4", id="prefix-case-sensitive"),
    ],
)
def test_format_model_compact(model: str | None, expected: str | None) -> None:
    assert format_model_compact(model) == expected


@pytest.mark.parametrize(
    ("repos", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param([], None, id="empty"),
        pytest.param(["", "  "], None, id="only-blanks"),
        pytest.param(["acme/foo"], "foo", id="one"),
        pytest.param(["singletoken"], "singletoken", id="no-owner"),
        pytest.param(["acme/foo/bar"], "foo/bar", id="nested"),
        pytest.param(["acme/foo", "acme/bar"], "foo +1", id="two"),
        pytest.param(["  acme/foo  ", "", "acme/bar"], "foo +1", id="blanks-dropped"),
        pytest.param(["acme/"], "acme/", id="empty-name"),
        pytest.param(("", "acme/foo", "a/b", "c/d"), "foo +2", id="tuple-leading-blank"),
    ],
)
def test_format_repos(repos: Sequence[str] | None, expected: str | None) -> None:
    assert format_repos(repos) == expected


def test_repos_are_trimmed_in_sql_of_every_character_python_strips() -> None:
    # filtering.WHITESPACE scans only up to U+3000, for a quick start: nothing beyond it.
    every = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    assert every == filtering.WHITESPACE

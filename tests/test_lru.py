"""The one bounded cache: the parse and validation caches and the persisted query store."""

from __future__ import annotations

from sessiongraph.lru import LRU


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)

    assert cache.get("a") == 1  # now the most recent
    cache.put("c", 3)

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_putting_a_known_key_replaces_it_and_makes_it_the_most_recent() -> None:
    cache: LRU[str, int] = LRU(2)
    cache.put("a", 1)
    cache.put("b", 2)

    cache.put("a", 10)
    cache.put("c", 3)

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (10, None, 3)


def test_a_miss_changes_nothing() -> None:
    cache: LRU[str, int] = LRU(1)
    cache.put("a", 1)

    assert cache.get("b") is None
    assert len(cache) == 1
    assert cache.get("a") == 1

"""Near-duplicate search: the multi-index search and the threaded block scan return exactly
the pairs of the plain all-pairs comparison (the exhaustive reference)."""

from __future__ import annotations

import numpy as np
import pytest

from fluxgym_coach.audit import duplicates


def _hashes(n: int, seed: int, families: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + \
        rng.integers(0, 2, n).astype(np.uint64)
    for k in range(families):  # near copies: 0..12 bits flipped from an earlier hash
        src, dst = rng.integers(0, n, 2)
        flips = rng.choice(64, rng.integers(0, 13), replace=False)
        h[dst] = h[src] ^ np.uint64(sum(1 << int(b) for b in flips))
    return h


def _reference(h: np.ndarray, threshold: int) -> set[tuple[int, int, int]]:
    dist = duplicates.hamming_matrix(h, h)
    i, j = np.nonzero(np.triu(dist <= threshold, 1))
    return {(int(a), int(b), int(dist[a, b])) for a, b in zip(i, j)}


def _as_set(pairs) -> set[tuple[int, int, int]]:
    i, j, d = pairs
    assert list(zip(i.tolist(), j.tolist())) == sorted(zip(i.tolist(), j.tolist()))  # ordered by i, j
    return set(zip(i.tolist(), j.tolist(), d.tolist()))


@pytest.mark.parametrize("threshold", [0, 3, 10, 16])
def test_multi_index_equals_exhaustive(threshold):
    h = _hashes(3500, seed=threshold, families=600)
    ref = _reference(h, threshold)
    assert len(ref) > 20  # the planted copies make the comparison meaningful
    indexed = duplicates.multi_index_pairs(h, threshold)
    if threshold <= 10:  # 3-bit chunks and smaller do not pay: None, the block scan answers
        assert indexed is not None
    if indexed is not None:
        assert _as_set(indexed) == ref
    assert _as_set(duplicates.exhaustive_pairs(h, threshold, block=97, threads=2)) == ref
    assert _as_set(duplicates.near_duplicate_pairs(h, threshold)) == ref


def test_skewed_hashes_fall_back_to_the_exhaustive_scan():
    # every hash shares most chunks: the index would compare nearly all pairs
    rng = np.random.default_rng(5)
    h = (np.uint64(0xFFFF_FFFF_FFFF_0000) | rng.integers(0, 2**16, 3200).astype(np.uint64))
    assert duplicates.multi_index_pairs(h, 10) is None
    # millions of pairs: compared as arrays (both are ordered by i, then j), not as sets
    dist = duplicates.hamming_matrix(h, h)
    ref_i, ref_j = np.nonzero(np.triu(dist <= 10, 1))
    i, j, d = duplicates.near_duplicate_pairs(h, 10)
    assert len(ref_i) > 1_000_000
    assert np.array_equal(i, ref_i) and np.array_equal(j, ref_j)
    assert np.array_equal(d, dist[ref_i, ref_j])


def test_groups_are_transitive_and_equal_for_both_searches(monkeypatch):
    h = _hashes(3200, seed=9, families=400)
    fast = duplicates.near_duplicate_groups(h, 10)
    monkeypatch.setattr(duplicates, "MULTI_INDEX_MIN", 10**9)  # force the block scan
    assert duplicates.near_duplicate_groups(h, 10) == fast
    a = np.array([0, 0b1111, 0b1111_1111], dtype=np.uint64)  # 0~1 at 4 bits, 1~2 at 4, 0~2 at 8
    assert duplicates.near_duplicate_groups(a, 4) == [[0, 1, 2]]

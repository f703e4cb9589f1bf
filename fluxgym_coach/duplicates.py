"""Exact and near duplicates from perceptual hashes: the one implementation audit and plugins share.

Near duplicates are pairs of 64-bit pHashes at most ``threshold`` bits apart
(Hamming distance), found exhaustively with numpy XOR + popcount in row
blocks, then grouped transitively (connected components with a union-find),
so A~B and B~C put A, B and C in one group. imagededup's default for a 64-bit
pHash is 10 bits (``max_distance_threshold=10``); we use the same default.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Default largest Hamming distance (bits of 64) for near duplicates (imagededup's default).
DEFAULT_THRESHOLD = 10


def hex_to_uint64(hashes: Sequence[str]) -> np.ndarray:
    """16-hex-digit hashes -> uint64 array (shape ``(n,)``)."""
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


if hasattr(np, "bitwise_count"):
    def popcount64(x: np.ndarray) -> np.ndarray:
        """Number of set bits of each uint64 (numpy >= 2 ``bitwise_count``)."""
        return np.bitwise_count(x)
else:  # pragma: no cover - numpy 1.26
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def popcount64(x: np.ndarray) -> np.ndarray:
        """Number of set bits of each uint64 (byte lookup table)."""
        x = np.ascontiguousarray(x, dtype=np.uint64)
        return _POP8[x.view(np.uint8).reshape(*x.shape, 8)].sum(axis=-1, dtype=np.uint8)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between uint64 hashes: ``(len(a), len(b))`` uint8."""
    return popcount64(np.bitwise_xor(a[:, None], b[None, :]))


class _UnionFind:
    """Disjoint sets over 0..n-1 (path halving; the smaller index is the root)."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        """The root of ``i``'s set."""
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        """Merge the sets of ``i`` and ``j``."""
        ri, rj = self.find(i), self.find(j)
        if ri != rj:
            self.parent[max(ri, rj)] = min(ri, rj)


def near_duplicate_pairs(hashes: np.ndarray, threshold: int, block: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``i < j`` with Hamming distance <= ``threshold``: arrays (i, j, distance).

    Exhaustive (exact) search, vectorised in row blocks of ``block`` hashes:
    memory ``block * n * 9`` bytes, time O(n^2 / 2) XOR+popcount.
    """
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    ii: list[np.ndarray] = []
    jj: list[np.ndarray] = []
    dd: list[np.ndarray] = []
    for start in range(0, n, block):
        stop = min(n, start + block)
        dist = hamming_matrix(h[start:stop], h[start:])
        rows, cols = np.nonzero(dist <= threshold)
        keep = cols > rows  # columns are offset by `start`: j = start + col, i = start + row
        rows, cols = rows[keep], cols[keep]
        ii.append(rows + start)
        jj.append(cols + start)
        dd.append(dist[rows, cols])
    if not ii:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.uint8)
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(dd)


def near_duplicate_groups(hashes: np.ndarray, threshold: int = DEFAULT_THRESHOLD,
                          block: int = 512) -> list[list[int]]:
    """Groups (lists of indices into ``hashes``, each sorted, size >= 2) of images
    linked by a chain of pairs at most ``threshold`` bits apart (transitive).
    Groups are ordered by their first index."""
    i, j, _ = near_duplicate_pairs(hashes, threshold, block)
    uf = _UnionFind(len(hashes))
    for a, b in zip(i.tolist(), j.tolist()):
        uf.union(a, b)
    groups: dict[int, list[int]] = {}
    for a in sorted(set(i.tolist()) | set(j.tolist())):
        groups.setdefault(uf.find(a), []).append(a)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def exact_duplicate_groups(digests: Sequence[str | None]) -> list[list[int]]:
    """Groups of indices with the same digest (size >= 2), ordered by first index."""
    by: dict[str, list[int]] = {}
    for idx, d in enumerate(digests):
        if d:
            by.setdefault(d, []).append(idx)
    return sorted((g for g in by.values() if len(g) > 1), key=lambda g: g[0])

"""Exact and near duplicates from perceptual hashes: the one implementation audit and plugins share.

Near duplicates are pairs of 64-bit pHashes at most ``threshold`` bits apart
(Hamming distance), found exhaustively with numpy XOR + popcount in row
blocks, then grouped transitively (connected components with a union-find),
so A~B and B~C put A, B and C in one group. imagededup's default for a 64-bit
pHash is 10 bits (``max_distance_threshold=10``); we use the same default.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: Default largest Hamming distance (bits of 64) for near duplicates (imagededup's default).
DEFAULT_THRESHOLD = 10


def hex_to_uint64(hashes: Sequence[str]) -> np.ndarray:
    """16-hex-digit hashes -> uint64 array (shape ``(n,)``)."""
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


if hasattr(np, "bitwise_count"):
    def popcount64(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Number of set bits of each uint64 (numpy >= 2 ``bitwise_count``), as uint8."""
        return np.bitwise_count(x, out=out)
else:  # pragma: no cover - numpy 1.26
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def popcount64(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Number of set bits of each uint64 (byte lookup table), as uint8."""
        x = np.ascontiguousarray(x, dtype=np.uint64)
        res = _POP8[x.view(np.uint8).reshape(*x.shape, 8)].sum(axis=-1, dtype=np.uint8)
        if out is not None:
            out[...] = res
            return out
        return res


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


def _block_pairs(h: np.ndarray, start: int, stop: int, threshold: int,
                 scratch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j > i, distance) between rows ``start:stop`` and every later hash."""
    rows_n, cols_n = stop - start, len(h) - start
    if scratch.get("x") is None or scratch["x"].size < rows_n * cols_n:
        scratch["x"] = np.empty(rows_n * cols_n, dtype=np.uint64)
        scratch["c"] = np.empty(rows_n * cols_n, dtype=np.uint8)
    x = scratch["x"][: rows_n * cols_n].reshape(rows_n, cols_n)
    c = scratch["c"][: rows_n * cols_n].reshape(rows_n, cols_n)
    np.bitwise_xor(h[start:stop, None], h[None, start:], out=x)
    popcount64(x, out=c)
    rows, cols = np.nonzero(c <= threshold)
    keep = cols > rows  # columns are offset by `start`: j = start + col, i = start + row
    rows, cols = rows[keep], cols[keep]
    return rows + start, cols + start, c[rows, cols]


#: From this many hashes on, :func:`near_duplicate_pairs` uses the multi-index search.
MULTI_INDEX_MIN = 3000


def _chunks(threshold: int) -> list[tuple[int, int]]:
    """``threshold + 1`` disjoint (shift, width) bit ranges covering the 64 bits."""
    m = threshold + 1
    base, extra = divmod(64, m)
    out, shift = [], 0
    for k in range(m):
        width = base + (1 if k < extra else 0)
        out.append((shift, width))
        shift += width
    return out


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, starts, stops) of the runs of equal keys (sizes >= 2) in sorted order."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    edges = np.flatnonzero(k[1:] != k[:-1]) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [len(k)]))
    big = stops - starts >= 2
    return order, starts[big], stops[big]


def multi_index_pairs(hashes: np.ndarray, threshold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The pairs of :func:`near_duplicate_pairs` by multi-index hashing, or None when
    the index would not pay (then the caller scans exhaustively).

    Pigeonhole principle (Norouzi, Punjani and Fleet, "Fast Search in Hamming
    Space with Multi-Index Hashing", CVPR 2012, with a search radius of 0 per
    chunk): split the 64 bits into ``threshold + 1`` disjoint chunks; two
    hashes at most ``threshold`` bits apart agree exactly on at least one
    chunk. So only hashes that share a chunk value are compared (exactly,
    XOR + popcount), which is every pair that can qualify: the result equals
    the exhaustive search. Returns None when ``threshold >= 64`` or when the
    candidates would exceed half the exhaustive comparisons (skewed hashes).
    """
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    if threshold >= 64 or n < 2:
        return None
    runs = []
    cost = 0
    for shift, width in _chunks(threshold):
        mask = np.uint64((1 << width) - 1)
        order, starts, stops = _runs((h >> np.uint64(shift)) & mask)
        sizes = stops - starts
        cost += int((sizes * (sizes - 1) // 2).sum())
        if cost > n * (n - 1) // 4:
            return None
        runs.append((order, starts, stops))
    found = []
    for order, starts, stops in runs:
        for a, b in zip(starts.tolist(), stops.tolist()):
            idx = order[a:b]  # increasing indices (stable sort of keys)
            sub = h[idx]
            dist = popcount64(np.bitwise_xor(sub[:, None], sub[None, :]))
            r, c = np.nonzero(dist <= threshold)
            keep = c > r
            if keep.any():
                found.append(idx[r[keep]].astype(np.int64) * n + idx[c[keep]])
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.uint8)
    code = np.unique(np.concatenate(found))
    i, j = code // n, code % n
    return i, j, popcount64(np.bitwise_xor(h[i], h[j]))


def near_duplicate_pairs(hashes: np.ndarray, threshold: int, block: int = 256,
                         threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``i < j`` with Hamming distance <= ``threshold``: arrays (i, j, distance),
    ordered by i then j.

    From :data:`MULTI_INDEX_MIN` hashes on, by :func:`multi_index_pairs` (exact,
    compares only hashes sharing a chunk); below that, or when the index would
    not pay, exhaustively (exact: no index that could miss a pair), vectorised in row
    blocks of ``block`` hashes against every later hash (the upper triangle
    only, n^2/2 XOR + popcount), the blocks spread over ``threads`` threads
    (default: the usable CPUs, at most 8; numpy releases the GIL in its
    ufuncs). Memory: ``block * n * 9`` bytes per thread, reused across blocks.
    """
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.uint8)
    if n >= MULTI_INDEX_MIN:
        indexed = multi_index_pairs(h, threshold)
        if indexed is not None:
            return indexed
    return exhaustive_pairs(h, threshold, block, threads)


def exhaustive_pairs(hashes: np.ndarray, threshold: int, block: int = 256,
                     threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`near_duplicate_pairs` by the exhaustive block scan (see there)."""
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    n = len(h)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.uint8)
    starts = list(range(0, n, block))
    n_threads = max(1, min(threads or _cpus(), 8, len(starts)))
    local = threading.local()

    def run(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scratch = getattr(local, "scratch", None)
        if scratch is None:
            scratch = local.scratch = {}
        return _block_pairs(h, start, min(n, start + block), threshold, scratch)

    if n_threads == 1 or n < 2048:
        scratch: dict[str, np.ndarray] = {}
        parts = [_block_pairs(h, s, min(n, s + block), threshold, scratch) for s in starts]
    else:
        with ThreadPoolExecutor(n_threads, thread_name_prefix="near-dup") as pool:
            parts = list(pool.map(run, starts))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]))


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def near_duplicate_groups(hashes: np.ndarray, threshold: int = DEFAULT_THRESHOLD,
                          block: int = 256) -> list[list[int]]:
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

"""Near-duplicate grouping benchmark: the similarity plugin's search against a pairwise imagehash loop.

Usage:
    python bench/similarity.py [--count 10000] [--pairwise-count 2000] [--threshold 10] [--seed 1]

Generates ``--count`` 64-bit perceptual hashes: random ones, plus planted
near-duplicate families (a base hash and 1 to 3 copies with 1 to 8 bits
flipped, chained so some members are only linked through another one). Then,
in the same run:

* **ours**: :func:`fluxgym_coach.plugins.builtin.similarity.near_duplicate_groups`
  over all ``--count`` hashes (exhaustive XOR + popcount in numpy row blocks,
  union-find, transitive groups);
* **pairwise**: the loop people write with ``imagehash``: ``h[i] - h[j] <=
  threshold`` for every pair, union-find on the hits. It is O(n^2) Python
  calls, so it runs on the first ``--pairwise-count`` hashes (all of them with
  ``--pairwise-count 10000``, about 50 million pairs); ours runs on the same
  subset too, which gives the like-for-like ratio, and the pairwise time is
  also extrapolated to ``--count`` by the number of pairs.

Both must return the same groups on the subset (checked; the script exits 1
otherwise), and ours must recover every planted family on the full set.
Nothing else is asserted: the numbers go to docs/performance.md.
"""

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fluxgym_coach.audit.duplicates import hamming_matrix, near_duplicate_pairs  # noqa: E402
from fluxgym_coach.plugins.builtin.similarity import hex_to_uint64, near_duplicate_groups  # noqa: E402


def previous_pairs(hashes: np.ndarray, threshold: int, block: int = 512):
    """The search as it was before issue 15 (one thread, 512-row blocks, new arrays per
    block): the exhaustive baseline the new search must equal."""
    ii, jj, dd = [], [], []
    for start in range(0, len(hashes), block):
        dist = hamming_matrix(hashes[start:start + block], hashes[start:])
        rows, cols = np.nonzero(dist <= threshold)
        keep = cols > rows
        rows, cols = rows[keep], cols[keep]
        ii.append(rows + start)
        jj.append(cols + start)
        dd.append(dist[rows, cols])
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(dd)


def best_of(k: int, fn, *args):
    best, result = float("inf"), None
    for _ in range(k):
        t0 = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return result, best


def scaling(args) -> bool:
    """Ours (threaded blocks) against the previous search at 1k and 10k: time, equality."""
    ok = True
    per = {}
    for n in (1000, 10000):
        hexes, _ = make_hashes(n, args.seed)
        arr = hex_to_uint64(hexes)
        new, t_new = best_of(5, near_duplicate_pairs, arr, args.threshold)
        old, t_old = best_of(5, previous_pairs, arr, args.threshold)
        same = all(np.array_equal(a, b) for a, b in zip(new, old))
        ok &= same
        per[n] = t_new
        print(f"pairs {n:>6} hashes: ours {t_new * 1000:7.1f} ms, previous search {t_old * 1000:7.1f} ms "
              f"(x{t_old / t_new:.2f}), {len(new[0])} pairs, identical pairs: {same}")
    print(f"growth 1k -> 10k: x{per[10000] / per[1000]:.0f} time for x10 hashes "
          "(x100 = quadratic, what an exhaustive search costs)")
    return ok


def make_hashes(count: int, seed: int) -> tuple[list[str], list[list[int]]]:
    """(hex hashes, planted families as index lists). About a third of the hashes are in families."""
    rng = random.Random(seed)
    hexes: list[str] = []
    families: list[list[int]] = []
    while len(hexes) < count:
        base = rng.getrandbits(64)
        if rng.random() < 0.15 and len(hexes) + 4 <= count:
            family = [len(hexes)]
            hexes.append(f"{base:016x}")
            prev = base
            for _ in range(rng.randint(1, 3)):
                flips = rng.sample(range(64), rng.randint(1, 8))
                prev = prev ^ sum(1 << b for b in flips)  # chained: each copy is near the previous one
                family.append(len(hexes))
                hexes.append(f"{prev:016x}")
            families.append(family)
        else:
            hexes.append(f"{base:016x}")
    return hexes, families


def pairwise_imagehash(hexes: list[str], threshold: int) -> list[list[int]]:
    """Groups from the all-pairs loop with imagehash objects and a union-find."""
    import imagehash

    hashes = [imagehash.hex_to_hash(h) for h in hexes]
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    linked = set()
    n = len(hashes)
    for i in range(n):
        hi = hashes[i]
        for j in range(i + 1, n):
            if hi - hashes[j] <= threshold:
                linked.update((i, j))
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in sorted(linked):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--pairwise-count", type=int, default=2000)
    ap.add_argument("--threshold", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    hexes, families = make_hashes(args.count, args.seed)
    arr = hex_to_uint64(hexes)
    n, t = len(hexes), args.threshold
    print(f"{n} hashes, {len(families)} planted families ({sum(map(len, families))} hashes), "
          f"threshold {t} bits, numpy {np.__version__}")

    scaled_ok = scaling(args)
    groups, ours_full = best_of(3, near_duplicate_groups, arr, t)
    found = {tuple(g) for g in groups}
    recovered = sum(any(set(f) <= set(g) for g in found) for f in families)
    print(f"ours      {n:>6} hashes: {ours_full:8.3f} s  {len(groups)} groups, "
          f"{recovered}/{len(families)} planted families recovered")

    m = min(args.pairwise_count, n)
    sub_ours, ours_sub = timed(near_duplicate_groups, arr[:m], t)
    sub_pair, pair_sub = timed(pairwise_imagehash, hexes[:m], t)
    same = sub_ours == sub_pair
    pairs_sub, pairs_full = m * (m - 1) / 2, n * (n - 1) / 2
    print(f"ours      {m:>6} hashes: {ours_sub:8.3f} s")
    print(f"pairwise  {m:>6} hashes: {pair_sub:8.3f} s  ({pairs_sub / pair_sub / 1e6:.2f} M pairs/s), "
          f"same groups as ours: {same}")
    print(f"ratio on {m} hashes (pairwise / ours): {pair_sub / ours_sub:,.0f}x")
    if m < n:
        extrapolated = pair_sub * pairs_full / pairs_sub
        print(f"pairwise extrapolated to {n} hashes: {extrapolated:8.1f} s "
              f"-> {extrapolated / ours_full:,.0f}x ours")
    if not same or recovered != len(families) or not scaled_ok:
        print("MISMATCH: the two methods disagree or a planted family was missed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

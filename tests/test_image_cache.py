"""image_cache.py: keys, atomic put/get, LRU eviction, two processes, CLI."""

from __future__ import annotations

import multiprocessing as mp

from typer.testing import CliRunner

from fluxgym_coach.cli import app
from fluxgym_coach.cache import ImageCache, make_key


def test_key_depends_on_digest_params_and_backend_only():
    k = make_key("d1", {"scale": 2, "fmt": "PNG"}, "local@1")
    assert k == make_key("d1", {"fmt": "PNG", "scale": 2}, "local@1")
    assert k != make_key("d2", {"scale": 2, "fmt": "PNG"}, "local@1")
    assert k != make_key("d1", {"scale": 3, "fmt": "PNG"}, "local@1")
    assert k != make_key("d1", {"scale": 2, "fmt": "PNG"}, "forge")
    assert len(k) == 32


def test_put_get_and_missing_file(tmp_path):
    cache = ImageCache(tmp_path)
    e = cache.put("ab" * 16, b"data", ".png", {"size": [1, 2]})
    assert e.path.read_bytes() == b"data" and e.path.suffix == ".png"
    got = cache.get("ab" * 16)
    assert got.meta == {"size": [1, 2]}
    e.path.unlink()
    assert cache.get("ab" * 16) is None
    assert cache.stats().entries == 0


def test_lru_eviction_keeps_recently_used(tmp_path):
    cache = ImageCache(tmp_path, max_bytes=3000)
    for i in range(3):
        cache.put(f"{i:032x}", b"x" * 1000, ".png")
    cache.get(f"{0:032x}")  # 0 is now the most recently used
    cache.put(f"{3:032x}", b"x" * 1000, ".png")
    assert cache.get(f"{1:032x}") is None
    assert cache.get(f"{0:032x}") is not None and cache.get(f"{3:032x}") is not None
    assert cache.stats().bytes <= 3000


def _writer(root: str, worker: int) -> None:
    cache = ImageCache(root)
    for i in range(40):
        cache.put(f"{i:032x}", bytes([worker]) * 2048, ".png")
        cache.get(f"{(i * 7) % 40:032x}")


def test_two_processes_share_one_cache(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = ImageCache(tmp_path)
    assert cache.stats().entries == 40
    for i in range(40):
        data = cache.get(f"{i:032x}").path.read_bytes()
        assert len(data) == 2048 and data in (b"\x01" * 2048, b"\x02" * 2048)
    assert not list(tmp_path.rglob("*.tmp"))


def test_cache_cli_stats_and_clear(tmp_path):
    ImageCache(tmp_path).put("cd" * 16, b"abc", ".png")
    runner = CliRunner()
    r = runner.invoke(app, ["cache", "stats", "--cache-dir", str(tmp_path), "--json"])
    assert r.exit_code == 0 and '"entries": 1' in r.stdout
    r = runner.invoke(app, ["cache", "clear", "--cache-dir", str(tmp_path), "--yes"])
    assert r.exit_code == 0 and "removed 1" in r.stdout
    assert ImageCache(tmp_path).stats().entries == 0

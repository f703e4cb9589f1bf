"""Cache identity of the super-resolution backends: switching the upscaler or the model
file recomputes; the same settings come from the cache; the variant records the model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image

from fluxgym_coach.enhance.backends.base import EnhanceParams, get_enhance_backend
from fluxgym_coach.enhance.backends.local import LocalBackend
from fluxgym_coach.enhance.backends.realesrgan import probe
from fluxgym_coach.cache import ImageCache
from fluxgym_coach.enhance.job import Source, record_variants, run_enhance
from fluxgym_coach.store import Store
from tests.test_upscale_spandrel import write_compact

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "dataset"
ENGINE = probe()


def _source(tmp_path: Path) -> list[Source]:
    src = tmp_path / "chelsea.png"
    Image.open(EXAMPLES / "chelsea.png").convert("RGB").crop((150, 60, 214, 108)).save(src)
    return [Source("chelsea.png", src)]


def _run(backend, sources, params, cache, store=None):
    async def go():
        try:
            return await run_enhance(sources, backend, params, cache, store=store)
        finally:
            await backend.aclose()

    return asyncio.run(go()).outcomes["chelsea.png"]


@pytest.mark.skipif(not ENGINE.ok, reason=f"Real-ESRGAN engine unavailable: {ENGINE.reason}")
def test_switching_the_upscaler_recomputes_and_switching_back_is_cached(tmp_path):
    sources, cache = _source(tmp_path), ImageCache(tmp_path / "cache")
    x2 = EnhanceParams(upscaler="realesr-animevideov3-x2", scale_factor=2)
    anime = x2.with_(upscaler="R-ESRGAN 4x+ Anime6B")

    def engine():
        return get_enhance_backend("realesrgan", gpu="cpu")

    first = _run(engine(), sources, x2, cache)
    assert first.status == "enhanced" and first.params["model"] == "realesr-animevideov3-x2"
    assert _run(engine(), sources, x2, cache).status == "cached"
    other = _run(engine(), sources, anime, cache)
    assert other.status == "enhanced" and other.params["model"] == "realesrgan-x4plus-anime"
    assert other.entry.key != first.entry.key
    assert other.entry.path.read_bytes() != first.entry.path.read_bytes()
    back = _run(engine(), sources, x2, cache)
    assert back.status == "cached" and back.entry.key == first.entry.key
    # the Pillow backend never answers for a model's result
    assert _run(LocalBackend(), sources, x2, cache).entry.key != first.entry.key


def test_replacing_the_model_file_recomputes_and_the_variant_names_the_model(tmp_path):
    pytest.importorskip("spandrel")
    models = tmp_path / "models"
    models.mkdir()
    sources, cache = _source(tmp_path), ImageCache(tmp_path / "cache")
    store = Store(tmp_path / "ds.sqlite")
    params = EnhanceParams(upscaler="mine", scale_factor=2)

    def engine():
        return get_enhance_backend("spandrel", models_dir=models)

    write_compact(models / "mine.pth", seed=0)
    first = _run(engine(), sources, params, cache)
    assert first.status == "enhanced"
    assert _run(engine(), sources, params, cache).status == "cached"
    write_compact(models / "mine.pth", seed=1)  # same name, other weights
    second = _run(engine(), sources, params, cache)
    assert second.status == "enhanced" and second.params["model_digest"] != first.params["model_digest"]
    assert second.entry.path.read_bytes() != first.entry.path.read_bytes()

    async def go():
        backend = engine()
        try:
            report = await run_enhance(sources, backend, params, cache, store=store)
            return record_variants(store, report, backend.identity), backend.identity
        finally:
            await backend.aclose()

    [variant], identity = asyncio.run(go())
    assert variant.params["model"] == "mine.pth" and variant.backend == identity
    assert identity.startswith("spandrel/")
    assert variant.params["model_digest"] == second.params["model_digest"]
    store.close()

"""The spandrel backend: small randomly initialised models written in the test, loaded
through spandrel from .pth / .safetensors, upscaling a real photo on the CPU; model lookup."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fluxgym_coach import imaging
from fluxgym_coach.enhance.backends.base import BackendError, EnhanceItem, EnhanceParams, get_enhance_backend
from fluxgym_coach.enhance.backends.spandrel_backend import find_model, list_models

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "dataset"


def write_compact(path: Path, seed: int = 0, scale: int = 2) -> Path:
    """A tiny Real-ESRGAN Compact (SRVGGNetCompact) with random weights, saved as a state dict."""
    torch = pytest.importorskip("torch")
    arch = pytest.importorskip("spandrel.architectures.Compact")
    torch.manual_seed(seed)
    model = arch.Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(path))
    else:
        torch.save(model.state_dict(), path)
    return path


def write_rrdb(path: Path) -> Path:
    """A tiny ESRGAN (RRDBNet, 1 block, 8 features, x4) with random weights."""
    torch = pytest.importorskip("torch")
    arch = pytest.importorskip("spandrel.architectures.ESRGAN")
    torch.manual_seed(1)
    model = arch.ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    torch.save(model.state_dict(), path)
    return path


def crop_item(scale: float) -> tuple[Image.Image, EnhanceItem]:
    im = Image.open(EXAMPLES / "chelsea.png").convert("RGB").crop((150, 60, 230, 124))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    data = buf.getvalue()
    return im, EnhanceItem("chelsea.png", data, imaging.digest_bytes(data), im.width, im.height, scale)


def run(backend, params, items):
    async def go():
        try:
            await backend.check(params)
            return await backend.upscale(items, params), [backend.cache_params("upscale", params, i)
                                                          for i in items]
        finally:
            await backend.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("writer,name", [(write_compact, "tiny-compact.pth"),
                                         (write_compact, "tiny-compact.safetensors"),
                                         (write_rrdb, "tiny-esrgan.pth")])
def test_a_model_file_written_here_loads_through_spandrel_and_upscales(tmp_path, writer, name):
    pytest.importorskip("spandrel")
    path = writer(tmp_path / name)
    backend = get_enhance_backend("spandrel", models_dir=tmp_path, tile=48)
    crop, item = crop_item(3.0)
    [res], [cp] = run(backend, EnhanceParams(upscaler=path.stem, scale_factor=3.0), [item])
    assert isinstance(res, bytes), res
    out = Image.open(io.BytesIO(res))
    assert out.size == (240, 192) and out.mode == "RGB"
    lanczos = crop.resize(out.size, Image.Resampling.LANCZOS)
    assert np.abs(np.asarray(out, float) - np.asarray(lanczos, float)).mean() > 1.0
    assert cp["model"] == name and cp["device"] == "cpu" and cp["half"] is False
    assert cp["model_digest"] == imaging.digest_file(path)
    assert name in backend.label


def test_model_lookup_by_path_and_by_name(tmp_path):
    models = tmp_path / "models" / "ESRGAN"
    models.mkdir(parents=True)
    f = models / "4x-Tiny.pth"
    f.write_bytes(b"x")
    (models / "notes.txt").write_text("not a model")
    assert list_models([models]) == [f]
    assert find_model(str(f)) == f
    assert find_model("4x-tiny", models) == f and find_model("4X-TINY.PTH", models) == f
    assert find_model("R-ESRGAN 4x+", models) is None  # a bundled / Forge name, not a file
    with pytest.raises(BackendError, match="no such file"):
        find_model(str(tmp_path / "missing.pth"), models)


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path):
    pytest.importorskip("spandrel")
    (tmp_path / "junk.pth").write_bytes(b"this is not a checkpoint")
    backend = get_enhance_backend("spandrel", models_dir=tmp_path)
    with pytest.raises(BackendError, match="junk.pth: not a model spandrel can load"):
        run(backend, EnhanceParams(upscaler="junk"), [])

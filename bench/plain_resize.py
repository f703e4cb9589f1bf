"""How well :func:`fluxgym_coach.enhance.server_io.is_plain_resize` tells an interrupted
image (a plain Lanczos resize) from a super-resolution result, on the real photos.

Usage:
    python bench/plain_resize.py [--side 256] [--model realesr-animevideov3]

Each photo of ``tests/data/real-images`` and ``examples/dataset``, reduced to ``--side``
px (long side), is upscaled x2 by a bundled Real-ESRGAN model on the CPU and, as Forge
does for an interrupted image, by a Lanczos resize to the extras size rule
(``floor(w*2/8)*8``). Prints per photo whether each was taken for a plain resize, then
the counts: a model result taken for a resize is a false alarm (a retry for nothing), a
resize not recognised is an interrupt that the content check misses.
"""

from __future__ import annotations

import argparse
import asyncio
import io
from pathlib import Path

from PIL import Image

from fluxgym_coach import imaging
from fluxgym_coach.enhance import server_io
from fluxgym_coach.enhance.backends.base import EnhanceItem, EnhanceParams, get_enhance_backend

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = (ROOT / "tests" / "data" / "real-images", ROOT / "examples" / "dataset")


async def main(side: int, model: str) -> None:
    backend = get_enhance_backend("realesrgan", gpu="cpu")
    params = EnhanceParams(upscaler=model, scale_factor=2)
    await backend.check(params)
    false_alarms = missed = n = 0
    try:
        for f in sorted(p for folder in FOLDERS for p in folder.iterdir() if imaging.is_image_name(p.name)):
            im = imaging.load_upright_rgb(f, max_side=side)
            data = server_io.server_upload(imaging.encode(im, "PNG"))
            item = EnhanceItem(f.name, data, imaging.digest_bytes(data), im.width, im.height, 2.0)
            [result] = await backend.upscale([item], params)
            size = (im.width * 2 // 8 * 8, im.height * 2 // 8 * 8)
            plain = imaging.encode(Image.open(io.BytesIO(data)).convert("RGB").resize(
                size, Image.Resampling.LANCZOS), "PNG")
            alarm = server_io.is_plain_resize(data, result) if isinstance(result, bytes) else None
            found = server_io.is_plain_resize(data, plain)
            false_alarms += bool(alarm)
            missed += not found
            n += 1
            print(f"{f.name:28s} {im.width}x{im.height}  model taken for a resize: {alarm}  "
                  f"resize recognised: {found}")
    finally:
        await backend.aclose()
    print(f"{n} photos: {false_alarms} false alarms (model result refused), "
          f"{missed} plain resizes not recognised (inconclusive)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--model", default="realesr-animevideov3")
    args = ap.parse_args()
    asyncio.run(main(args.side, args.model))

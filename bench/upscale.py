"""Super-resolution benchmark: Lanczos against the bundled Real-ESRGAN models (and a spandrel model).

Usage:
    python bench/upscale.py [--crop 192] [--images 13] [--factors 2 4] [--gpu cpu|N]
                            [--models all|NAME,NAME] [--spandrel-model PATH] [--crops-out docs/]

For each real photo (examples/dataset + tests/data/real-images) a centred
``--crop`` px square is the ground truth; it is downscaled by each factor
(Pillow bicubic, antialiased) and upscaled back by every method, on the
device ``--gpu`` says (default: the CPU; a Vulkan GPU number also times the
GPU). Per method and factor it prints the mean over the photos of:

* **PSNR** (dB) and **SSIM** on the luma (ITU-R BT.601 Y), a border of
  ``factor`` px left out, as super-resolution papers report them. SSIM is the
  standard formula of Wang, Bovik, Sheikh and Simoncelli, "Image quality
  assessment: from error visibility to structural similarity", IEEE TIP 13(4),
  2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255.
* **sharpness**: variance of the Laplacian of the result over that of the
  original (the no-reference figure of :func:`fluxgym_coach.imaging.laplacian_variance`;
  1.00 = as crisp as the original, Lanczos is well below).
* **s/MP**: seconds per megapixel of output, and its ratio to Lanczos in
  the same run.

Real-ESRGAN is trained to restore degraded photos, not to invert a clean
bicubic downscale, so its PSNR can be *below* Lanczos while it looks sharper:
read PSNR/SSIM with the sharpness column and the side-by-side crops that
``--crops-out`` writes (``upscale-x<factor>.png``). Nothing is asserted; the
figures go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fluxgym_coach import imaging  # noqa: E402
from fluxgym_coach.enhance.backends.base import EnhanceItem, EnhanceParams, get_enhance_backend  # noqa: E402
from fluxgym_coach.enhance.backends.realesrgan import MODELS  # noqa: E402

PHOTOS = [ROOT / "examples" / "dataset", ROOT / "tests" / "data" / "real-images"]


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma in 0..255 (float64) of an (h, w, 3) uint8 array."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return 0.299 * r + 0.587 * g + 0.114 * b


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two luma arrays, peak 255."""
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _gauss_filter(x: np.ndarray, sigma: float = 1.5, size: int = 11) -> np.ndarray:
    k = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    k /= k.sum()
    # separable 'valid' convolution, as in Wang et al.'s reference implementation
    rows = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, x)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, rows)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two luma arrays (Wang et al. 2004; see the module docstring)."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _gauss_filter(a), _gauss_filter(b)
    var_a = _gauss_filter(a * a) - mu_a**2
    var_b = _gauss_filter(b * b) - mu_b**2
    cov = _gauss_filter(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean())


def sharpness(im: Image.Image) -> float:
    """The no-reference figure: variance of the 4-neighbour Laplacian of the grayscale image."""
    return imaging.laplacian_variance(im.convert("L"))


def photos(n: int, crop: int) -> list[tuple[str, Image.Image]]:
    """Up to ``n`` real photos, each as a centred ``crop`` px RGB square."""
    out = []
    for folder in PHOTOS:
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() not in (".png", ".jpg", ".jpeg"):
                continue
            im = imaging.load_upright_rgb(p)
            side = min(crop, im.width, im.height)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            out.append((p.name, im.crop((left, top, left + side, top + side))))
    return out[:n]


async def _run_backend(backend, upscaler: str, lr: Image.Image, factor: int) -> tuple[Image.Image, float]:
    buf = io.BytesIO()
    lr.save(buf, "PNG")
    data = buf.getvalue()
    item = EnhanceItem("bench.png", data, imaging.digest_bytes(data), lr.width, lr.height, float(factor))
    params = EnhanceParams(upscaler=upscaler, scale_factor=float(factor))
    t = time.perf_counter()
    [res] = await backend.upscale([item], params)
    dt = time.perf_counter() - t
    if not isinstance(res, bytes):
        raise SystemExit(f"{upscaler}: {res.reason}")
    return Image.open(io.BytesIO(res)).convert("RGB"), dt


def _score(hr: Image.Image, out: Image.Image, factor: int) -> tuple[float, float, float]:
    a, b = luma(np.asarray(hr)), luma(np.asarray(out))
    f = factor
    a, b = a[f:-f, f:-f], b[f:-f, f:-f]
    return psnr(a, b), ssim(a, b), sharpness(out) / max(1e-9, sharpness(hr))


def side_by_side(tiles: list[tuple[str, Image.Image]], path: Path, zoom: int = 2) -> None:
    """One PNG: the labelled tiles left to right, each enlarged ``zoom`` x (nearest)."""
    w, h = tiles[0][1].width * zoom, tiles[0][1].height * zoom
    sheet = Image.new("RGB", (len(tiles) * (w + 4) - 4, h + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate(tiles):
        sheet.paste(im.resize((w, h), Image.Resampling.NEAREST), (i * (w + 4), 16))
        draw.text((i * (w + 4) + 2, 2), label, fill="black")
    sheet.save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--images", type=int, default=13)
    ap.add_argument("--factors", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--gpu", default="cpu")
    ap.add_argument("--models", default="all")
    ap.add_argument("--spandrel-model", type=Path)
    ap.add_argument("--crops-out", type=Path)
    args = ap.parse_args()
    asyncio.run(bench(args))


async def bench(args: argparse.Namespace) -> None:
    models = list(MODELS) if args.models == "all" else args.models.split(",")
    engines: dict[str, tuple[object, str]] = {}
    rsr = get_enhance_backend("realesrgan", gpu=args.gpu)
    for m in models:
        engines[m] = (rsr, m)
    if args.spandrel_model:
        engines[args.spandrel_model.name] = (get_enhance_backend("spandrel"), str(args.spandrel_model))
    imgs = photos(args.images, args.crop)
    print(f"{len(imgs)} photos, {args.crop} px crops, device: {getattr(rsr, 'device_name', '?')}")
    try:
        for factor in args.factors:
            await bench_factor(imgs, factor, engines, args.crops_out)
    finally:
        for backend in {id(b): b for b, _ in engines.values()}.values():
            await backend.aclose()  # type: ignore[attr-defined]


async def bench_factor(imgs, factor: int, engines, crops_out: Path | None) -> None:
    rows: dict[str, list[tuple[float, float, float, float]]] = {"lanczos": []}
    crops: list[tuple[str, Image.Image]] = []
    for n, (name, hr) in enumerate(imgs):
        side = hr.width - hr.width % factor
        hr = hr.crop((0, 0, side, side))
        lr = hr.resize((side // factor, side // factor), Image.Resampling.BICUBIC)
        t = time.perf_counter()
        lz = lr.resize(hr.size, Image.Resampling.LANCZOS)
        mp = hr.width * hr.height / 1e6
        rows["lanczos"].append((*_score(hr, lz, factor), (time.perf_counter() - t) / mp))
        results = {"lanczos": lz}
        for label, (backend, upscaler) in engines.items():
            out, dt = await _run_backend(backend, upscaler, lr, factor)
            rows.setdefault(label, []).append((*_score(hr, out, factor), dt / mp))
            results[label] = out
        if n == 0 and crops_out:
            q = hr.width // 2
            box = (q // 2, q // 2, q // 2 + q, q // 2 + q)
            crops = [("input (nearest)", lr.resize(hr.size, Image.Resampling.NEAREST).crop(box))]
            crops += [(k, v.crop(box)) for k, v in results.items()] + [("original", hr.crop(box))]
            crops_out.mkdir(parents=True, exist_ok=True)
            side_by_side(crops, crops_out / f"upscale-x{factor}.png")
    base_t = np.mean([r[3] for r in rows["lanczos"]])
    print(f"\nx{factor} (downscaled by {factor}, upscaled back), mean of {len(imgs)} photos")
    print(f"{'method':<26}{'PSNR dB':>8}{'SSIM':>7}{'sharp':>7}{'s/MP':>9}{'x Lanczos':>11}")
    for label, vals in rows.items():
        p, s, sh, t = (float(np.mean([v[i] for v in vals])) for i in range(4))
        print(f"{label:<26}{p:>8.2f}{s:>7.3f}{sh:>7.2f}{t:>9.2f}{t / base_t:>11.0f}")


if __name__ == "__main__":
    main()

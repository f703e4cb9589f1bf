"""The seed's Python API (image_enhancement.py) against the fake Forge server."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from fluxgym_coach import imaging
from fluxgym_coach.enhance.backends.forge import output_size
from fluxgym_coach.cache import ImageCache
from fluxgym_coach.enhance.enhancer import EnhancementError, ImageEnhancer, default_output, enhance_image

# Seed 002, "Exemple d'Utilisation", verbatim except the two paths.
SEED_EXAMPLE = '''
from pathlib import Path
from fluxgym_coach.enhance.enhancer import ImageEnhancer

# Initialisation
enhancer = ImageEnhancer()

# Traitement d'une image
input_path = Path("chemin/vers/image.jpg")
output_path = Path("chemin/de/sortie/image_amelioree.png")

try:
    result_path, was_processed = enhancer.upscale_image(
        image_path=input_path,
        output_path=output_path,
        scale_factor=2,
        upscaler="R-ESRGAN_4x+",
        denoising_strength=0.5,
        prompt="high quality, high resolution, detailed",
        negative_prompt="blurry, lowres, low quality, artifacts, jpeg artifacts",
        steps=20,
        cfg_scale=7.0,
        sampler_name="Euler a",
        output_format="PNG"
    )
    
    if was_processed:
        print(f"Image traitée et sauvegardée : {result_path}")
    else:
        print(f"Image récupérée depuis le cache : {result_path}")
        
except Exception as e:
    print(f"Erreur lors du traitement : {str(e)}")
'''


def test_seed_002_example_runs_as_written(fake_forge, tmp_path, monkeypatch, capsys):
    src = tmp_path / "chemin" / "vers" / "image.jpg"
    src.parent.mkdir(parents=True)
    Image.new("RGB", (60, 44), (10, 120, 200)).save(src, "JPEG")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLUXGYM_COACH_API_URL", fake_forge.url)
    exec(compile(textwrap.dedent(SEED_EXAMPLE), "seed_002_example", "exec"), {})
    first = capsys.readouterr().out
    assert first.startswith("Image traitée et sauvegardée : chemin/de/sortie/image_amelioree.png")
    out = tmp_path / "chemin/de/sortie/image_amelioree.png"
    assert Image.open(out).size == (120, 88) and Image.open(out).format == "PNG"
    assert fake_forge.jobs_by_path == {"/sdapi/v1/extra-single-image": 1}
    exec(compile(textwrap.dedent(SEED_EXAMPLE), "seed_002_example", "exec"), {})
    assert capsys.readouterr().out.startswith("Image récupérée depuis le cache")
    assert fake_forge.job_requests == 1


def test_seed_002_initialisation_block(fake_forge, small_images):
    enhancer = ImageEnhancer(api_url=fake_forge.url, cache=ImageCache(), use_cache=True)
    path, processed = enhancer.upscale_image(small_images[0], scale_factor=3, upscaler="Lanczos")
    assert path == small_images[0].parent / "c0_enhanced.png" and processed
    assert Image.open(path).size == output_size(40, 30, 3)


def test_upscale_batch_colorizes_bw_and_uses_the_cache(fake_forge, small_images, tmp_path):
    enhancer = ImageEnhancer(api_url=fake_forge.url)
    results = enhancer.upscale_batch(small_images, tmp_path / "out", scale_factor=2,
                                     upscaler="Lanczos", output_format="JPG")
    assert [p.name for p, _ in results] == [f"{p.stem}_enhanced.jpg" for p in small_images]
    assert all(processed for _, processed in results)
    bw_out = results[-1][0]
    assert not imaging.is_grayscale_rgb(imaging.load_upright_rgb(bw_out))
    assert Image.open(bw_out).format == "JPEG"
    jobs = fake_forge.job_requests
    assert fake_forge.jobs_by_path["/sdapi/v1/img2img"] == 1
    extras = fake_forge.jobs_by_path.get("/sdapi/v1/extra-batch-images", 0) + \
        fake_forge.jobs_by_path.get("/sdapi/v1/extra-single-image", 0)
    assert extras < 5  # batched: fewer requests than images
    again = enhancer.upscale_batch(small_images, tmp_path / "out", scale_factor=2, upscaler="Lanczos",
                                   output_format="JPG")
    assert [processed for _, processed in again] == [False] * 5
    assert fake_forge.job_requests == jobs


def test_no_colorize_keeps_bw(fake_forge, small_images, tmp_path):
    enhancer = ImageEnhancer(api_url=fake_forge.url, auto_colorize=False)
    path, _ = enhancer.upscale_image(small_images[-1], tmp_path / "bw.png", upscaler="Lanczos")
    assert imaging.is_grayscale_rgb(imaging.load_upright_rgb(path))
    assert "/sdapi/v1/img2img" not in fake_forge.jobs_by_path


def test_colorize_image_keeps_the_size(fake_forge, small_images):
    enhancer = ImageEnhancer(api_url=fake_forge.url)
    path, processed = enhancer.colorize_image(small_images[-1])
    assert path.name == "bw_colorized.png" and processed
    assert Image.open(path).size == Image.open(small_images[-1]).size == (36, 28)
    assert not imaging.is_grayscale_rgb(imaging.load_upright_rgb(path))
    assert fake_forge.jobs_by_path == {"/sdapi/v1/img2img": 1}


def test_enhance_image_helper_single_and_many(fake_forge, small_images, tmp_path):
    path, processed = enhance_image(small_images[0], tmp_path / "one.webp", api_url=fake_forge.url,
                                    scale_factor=2, upscaler="Lanczos", output_format="WEBP")
    assert processed and Image.open(path).format == "WEBP"
    many = enhance_image(small_images[:2], tmp_path / "many", api_url=fake_forge.url,
                         upscaler="Nearest")
    assert [p.parent for p, _ in many] == [tmp_path / "many"] * 2


def test_existing_output_is_never_replaced_without_overwrite(fake_forge, small_images, tmp_path):
    out = tmp_path / "taken.png"
    out.write_bytes(b"precious")
    enhancer = ImageEnhancer(api_url=fake_forge.url)
    with pytest.raises(EnhancementError, match="already exists: use --force"):
        enhancer.upscale_image(small_images[0], out, upscaler="Lanczos")
    assert out.read_bytes() == b"precious"
    ImageEnhancer(api_url=fake_forge.url, overwrite=True).upscale_image(small_images[0], out,
                                                                        upscaler="Lanczos")
    assert Image.open(out).size == (80, 56)


def test_no_cache_recomputes_and_keeps_nothing(fake_forge, small_images, tmp_path):
    cache = ImageCache(tmp_path / "c")
    enhancer = ImageEnhancer(api_url=fake_forge.url, cache=cache, use_cache=False)
    for _ in range(2):
        _, processed = enhancer.upscale_image(small_images[0], tmp_path / "o.png", upscaler="Lanczos")
        assert processed
    assert fake_forge.job_requests == 2
    assert cache.stats().entries == 0


def test_bad_inputs_name_the_file(fake_forge, tmp_path):
    enhancer = ImageEnhancer(api_url=fake_forge.url)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        enhancer.upscale_image(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="notes.txt: unsupported file type .txt"):
        enhancer.upscale_image(tmp_path / "notes.txt")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(EnhancementError, match="broken.png"):
        enhancer.upscale_image(broken)
    assert fake_forge.job_requests == 0


def test_unknown_upscaler_fails_fast_with_closest_names(fake_forge, small_images):
    from fluxgym_coach.enhance.backends.base import BackendError
    with pytest.raises(BackendError, match="closest: .*R-ESRGAN 4x\\+"):
        ImageEnhancer(api_url=fake_forge.url).upscale_image(small_images[0], upscaler="R-ESRGAN 4x")
    assert fake_forge.job_requests == 0


def test_default_output_names():
    assert default_output("a/b/photo.jpeg", "JPG") == Path("a/b/photo_enhanced.jpg")
    assert default_output("photo.png", "WEBP", folder="out") == Path("out/photo_enhanced.webp")
    with pytest.raises(ValueError, match="unsupported output format"):
        default_output("x.png", "GIF")


async def test_works_inside_a_running_event_loop(fake_forge, small_images, tmp_path):
    enhancer = ImageEnhancer(api_url=fake_forge.url)
    path, _ = enhancer.upscale_image(small_images[1], tmp_path / "x.png", upscaler="Lanczos")
    assert path.exists()
    assert asyncio.get_running_loop().is_running()

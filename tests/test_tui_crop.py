"""The preview's crop overlay (issue 12, item 5): ``z`` draws what the chosen trainer
keeps, ``Z`` cycles the profiles, the info panel shows bucket, scale and crop."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from fluxgym_coach.audit.faces import FaceBox, save_faces
from fluxgym_coach.audit.preview_geometry import PROFILE_KEYS, trainer_view
from fluxgym_coach.cli import app as cli_app
from fluxgym_coach.tui.crop import DIM, FACE_CUT, OUTLINE, outline_width, thumb_rect
from fluxgym_coach.tui.widgets.info_panel import InfoPanel
from fluxgym_coach.tui.widgets.preview import Preview
from tests.fixtures_tui import settle, wait_until

SIZE = (120, 40)
GREY = 128


@pytest.fixture
def crop_dataset(tmp_path):
    """a-wide.png 1536x1024 (a 3:2 photo's size), b-exact.png 1216x832 (a zero-crop
    bucket at 1024) and c-odd.png 1777x1000 (the export's grid drops 27 columns), flat grey."""
    d = tmp_path / "crop-dataset"
    d.mkdir()
    Image.new("RGB", (1536, 1024), (GREY,) * 3).save(d / "a-wide.png")
    Image.new("RGB", (1216, 832), (GREY,) * 3).save(d / "b-exact.png")
    Image.new("RGB", (1777, 1000), (GREY,) * 3).save(d / "c-odd.png")
    return d


def _cli_bucket(size: str) -> dict:
    r = CliRunner().invoke(cli_app, ["buckets", "--size", size, "--trainer", "kohya", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)[0]


def _info_text(app) -> str:
    return str(app.query_one(InfoPanel).content)


def _shown(preview: Preview) -> Image.Image:
    return preview._image_widget.image


async def test_toggle_draws_the_kohya_window_and_the_info_panel_matches_the_cli(crop_dataset, make_tui_app):
    app = make_tui_app(crop_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        preview = app.query_one(Preview)
        await wait_until(pilot, lambda: preview.plain is not None, "the thumbnail")
        assert app.current.relpath == "a-wide.png"
        assert preview.crop_view is None and "crop:" not in preview.border_title
        assert "bucket" not in _info_text(app)
        decodes = app.thumbs.decodes
        plain = preview.plain

        await pilot.press("z")
        await settle(pilot, app)
        view = preview.crop_view
        cli = _cli_bucket("1536x1024")
        assert list(view.bucket) == cli["bucket"] == [1024, 704]
        assert view.scale == pytest.approx(cli["scale"])
        assert [round(v, 2) for v in view.crop] == cli["crop"]
        assert "crop: kohya 1024" in preview.border_title
        info = _info_text(app)
        assert "kohya 1024: bucket 1024x704, scale x0.69, crop 47x0 px (3.0%)" in info
        assert "face cut" not in info

        shown = _shown(preview)
        assert shown is not plain and preview.plain is plain  # the cached thumbnail is untouched
        left, top, right, bottom = thumb_rect(view, plain.size)
        assert (left, right) == (round(cli["crop"][0] * plain.width / 1536),
                                 round(cli["crop"][2] * plain.width / 1536))
        mid = plain.height // 2
        dim = int(GREY * DIM)
        assert shown.getpixel((left, mid)) == OUTLINE and shown.getpixel((right - 1, mid)) == OUTLINE
        assert shown.getpixel((left - 1, mid)) == (dim,) * 3  # dropped by kohya: dimmed
        assert shown.getpixel((right, mid)) == (dim,) * 3
        w = outline_width(plain.size)
        assert shown.getpixel((left + w, mid)) == (GREY,) * 3  # kept: as it was
        assert plain.getpixel((left, mid)) == (GREY,) * 3

        await pilot.press("z")
        await settle(pilot, app)
        assert _shown(preview) is plain and preview.crop_view is None
        assert "crop:" not in preview.border_title and "bucket" not in _info_text(app)
        assert app.thumbs.decodes == decodes  # toggling decoded nothing


async def test_profiles_cycle_and_our_export_says_no_crop(crop_dataset, make_tui_app):
    app = make_tui_app(crop_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        preview = app.query_one(Preview)
        seen = []
        for _ in PROFILE_KEYS:
            await pilot.press("Z")
            await settle(pilot, app)
            await wait_until(pilot, lambda: preview.crop_view is not None, "the crop view")
            seen.append(preview.crop_view.profile)
        assert seen == list(PROFILE_KEYS)  # the first Z turns the overlay on at kohya
        assert preview.crop_view.profile == "export"
        want = trainer_view((1536, 1024), 1024, "export")
        # 3:2 fits the 32-px grid exactly: the export only scales, kohya keeps the file
        assert preview.crop_view.bucket == want.bucket == (1248, 832)
        assert preview.border_title.endswith("crop: export 1024: no crop")
        assert "bucket 1248x832, scale x0.81, export drops 0x0 px (0.0%); kohya: no crop" in _info_text(app)

        await pilot.press("down")  # an image already at its zero-crop bucket: written as is
        await settle(pilot, app)
        await wait_until(pilot, lambda: preview.crop_view is not None and preview.crop_view.size == (1216, 832),
                         "the second image's crop")
        assert preview.border_title.endswith("crop: export 1024: no crop")
        assert "bucket 1216x832, scale x1.00, export drops 0x0 px (0.0%)" in _info_text(app)

        await pilot.press("down")  # the grid drops a few columns: the export's window is drawn
        await settle(pilot, app)
        await wait_until(pilot, lambda: preview.crop_view is not None and preview.crop_view.size == (1777, 1000),
                         "the third image's crop")
        assert preview.crop_view.bucket == (1344, 768) and preview.crop_view.crop_px == (27, 0)
        assert preview.border_title.endswith("crop: export 1024: no crop by kohya, export drops 27x0 px")
        left = thumb_rect(preview.crop_view, preview.plain.size)[0]
        assert left > 0 and _shown(preview).getpixel((left, preview.plain.height // 2)) == OUTLINE

        await pilot.press("Z")  # wraps to kohya
        await settle(pilot, app)
        assert preview.crop_view.profile == "kohya"


async def test_a_stored_face_the_crop_cuts_is_named(crop_dataset, make_tui_app):
    app = make_tui_app(crop_dataset, audit=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app)
        store = app.dataset.store
        rec = store.image("a-wide.png")
        # a face touching the left edge: kohya's centred crop drops 23 px there
        save_faces(store, rec.relpath, rec.digest, [FaceBox(0.0, 0.3, 0.1, 0.5)])
        await pilot.press("z")
        await settle(pilot, app)
        preview = app.query_one(Preview)
        await wait_until(pilot, lambda: preview.crop_view is not None, "the crop view")
        assert preview.crop_view.faces_cut == 1
        assert "face cut (1 of 1)" in _info_text(app)
        assert "face cut" in preview.border_title
        thumb, shown = preview.plain, _shown(preview)
        # the cut face is framed in red: its right edge sits in the kept, undimmed region
        face_right = round(0.1 * thumb.width) - 1
        assert shown.getpixel((face_right, round(0.4 * thumb.height))) == FACE_CUT
        assert thumb.getpixel((face_right, round(0.4 * thumb.height))) == (GREY,) * 3
        for _ in range(len(PROFILE_KEYS) - 1):  # to our export: the window keeps the face
            await pilot.press("Z")
            await settle(pilot, app)
        assert preview.crop_view.profile == "export" and preview.crop_view.faces_cut == 0
        assert "face cut" not in _info_text(app)

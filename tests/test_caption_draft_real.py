"""The draft backend on the 13 real photographs (examples/dataset + tests/data/real-images), checked
against what is known of each image."""

from __future__ import annotations

import asyncio

from PIL import Image

from fluxgym_coach.captions import job as captioning
from fluxgym_coach.captions import text as rules
from fluxgym_coach.captions.backends import draft
from fluxgym_coach.dataset import Dataset

GRAYSCALE = {"camera.png", "brick.png", "coins.png", "clock_motion.png", "horse.png"}


def tones(text: str) -> list[str]:
    """The colour names of the "... tones" tag, most dominant first."""
    tag = [t for t in text.split(", ") if t.endswith(" tones")][0][: -len(" tones")]
    return tag.replace(" with ", " and ").split(" and ")


def test_draft_captions_every_real_image_truthfully(real_dataset):
    concept = real_dataset.parent / "10_sample photos"
    real_dataset.rename(concept)
    with Dataset(concept) as ds:
        ds.scan()
        report = asyncio.run(captioning.run_caption(ds, captioning.get_caption_backend("draft"),
                                                    trigger="ohwx"))
        names = [r.relpath for r in ds.images()]
        assert len(names) == 13 and report.counts() == {"captioned": 13}
        texts = {n: ds.read_caption(n).text for n in names}
    for name, text in texts.items():
        assert text.startswith("ohwx, sample photos, "), text  # trigger, then the folder concept
        # drafts pass every caption rule but one: they are flagged as drafts to edit
        assert [f.code for f in rules.lint(text, "ohwx")] == ["draft"], (name, text)
        if name in GRAYSCALE:
            assert "black-and-white image" in text and "colour image" not in text, (name, text)
            assert set(tones(text)) <= set(draft.GRAYS), (name, text)
        else:
            assert "colour image" in text, (name, text)
    # the coffee photo is dominated by brown / dark tones
    assert tones(texts["coffee.png"])[0] in {"brown", "dark brown", "dark red", "black"}
    assert "brown" in tones(texts["coffee.png"]) or "dark brown" in tones(texts["coffee.png"])
    # the Hubble deep field is mostly black sky; the retina photo is red on black
    assert tones(texts["hubble_deep_field.jpg"])[0] == "black"
    assert "red" in tones(texts["retina.jpg"]) and "black" in tones(texts["retina.jpg"])
    # the horse is a black silhouette on white
    assert set(tones(texts["horse.png"])) == {"white", "black"}
    # orientation from the pixel sizes: 512x512 and 1411x1411 are square, 451x300 is landscape
    for square in ("camera.png", "astronaut.png", "brick.png", "retina.jpg"):
        assert "square orientation" in texts[square]
    for wide in ("chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"):
        assert "landscape orientation" in texts[wide]


def test_palette_naming_and_orientation():
    assert draft.name_colour((12, 12, 12)) == "black"
    assert draft.name_colour((120, 70, 35)) == "brown"
    assert draft.name_colour((30, 40, 200)) == "blue"
    assert draft.name_colour((200, 30, 30), grays_only=True) in draft.GRAYS
    assert draft.orientation(100, 300) == "portrait" and draft.orientation(300, 290) == "square"
    im = Image.new("RGB", (60, 120), (20, 120, 40))
    im.paste((240, 240, 240), (0, 0, 60, 30))
    text, tags = draft.describe(im, "plants")
    assert tags == ["plants", "colour image", "portrait orientation", "green and white tones"]
    assert text == ", ".join(tags)

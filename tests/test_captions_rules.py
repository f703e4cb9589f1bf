"""Caption text rules, lint, token counts and undoable bulk edits (fluxgym_coach.captions.text)."""

from __future__ import annotations

import pytest

from fluxgym_coach.captions import text as rules
from fluxgym_coach.dataset import Dataset


@pytest.fixture(autouse=True)
def no_local_tokenizers(monkeypatch, tmp_path_factory):
    """Token counts here must not depend on a Hugging Face cache of the machine."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf")))
    monkeypatch.delenv(rules.CLIP_TOKENIZER_ENV, raising=False)
    monkeypatch.delenv(rules.T5_TOKENIZER_ENV, raising=False)
    rules.default_counter.cache_clear()
    yield
    rules.default_counter.cache_clear()


def codes(findings):
    return [f.code for f in findings]


def test_apply_trigger_puts_it_first_once():
    assert rules.apply_trigger("a cat on a sofa", "ohwx") == "ohwx, a cat on a sofa"
    assert rules.apply_trigger("ohwx, a cat", "ohwx") == "ohwx, a cat"
    assert rules.apply_trigger("cat, ohwx, sofa", "ohwx") == "ohwx, cat, sofa"
    assert rules.apply_trigger("", "ohwx") == "ohwx"
    # a longer word that merely starts with the trigger is not the trigger
    assert rules.apply_trigger("ohwxy cat", "ohwx") == "ohwx, ohwxy cat"
    assert rules.apply_trigger("line one\nline two", None) == "line one line two"


def test_clean_generated_strips_model_boilerplate():
    assert rules.clean_generated("</s><s>The image shows a red car parked.</s><pad>") == "a red car parked."
    assert rules.clean_generated('Caption: "**A dog** running"') == "A dog running"
    assert rules.clean_generated("- a bullet\n- two") == "a bullet two"


def test_lint_missing_and_empty_are_errors():
    assert codes(rules.lint(None)) == ["missing"]
    f = rules.lint("   \n ")
    assert f[0].code == "empty" and f[0].severity == "error"


def test_lint_trigger_rules():
    f = rules.lint("a man in a red coat walking", trigger="ohwx")
    assert "trigger-missing" in codes(f)
    miss = next(x for x in f if x.code == "trigger-missing")
    assert miss.severity == "error" and "ohwx" in miss.fix and miss.threshold == "ohwx"
    f = rules.lint("a man, ohwx, walking in the snow at night", trigger="ohwx")
    assert "trigger-not-first" in codes(f) and "trigger-missing" not in codes(f)
    assert rules.lint("ohwx, a man in a red coat walking in the snow", trigger="ohwx") == []


def test_lint_short_multiline_encoding_and_duplicate_tags():
    f = rules.lint("ohwx, cat", trigger="ohwx")
    short = next(x for x in f if x.code == "too-short")
    assert short.value == 1 and short.threshold == 3
    assert "too-short" not in codes(rules.lint("ohwx, cat", trigger="ohwx", min_words=1))
    assert "multiline" in codes(rules.lint("a cat on a mat\na second line here"))
    enc = next(x for x in rules.lint("a cat on a mat", encoding="cp1252") if x.code == "not-utf8")
    assert enc.severity == "error" and enc.value == "cp1252"
    dup = next(x for x in rules.lint("cat, dog, Cat, red_hair, red hair") if x.code == "duplicate-tags")
    assert dup.value == ["cat", "red hair"]
    with pytest.raises(TypeError, match="unknown lint thresholds"):
        rules.lint("x", max_words=3)


def test_lint_token_budgets_and_estimate_flag():
    long = "ohwx, " + " ".join(["a red apple on a wooden table"] * 20)
    f = rules.lint(long, trigger="ohwx")
    clip = next(x for x in f if x.code == "clip-truncated")
    assert clip.value > 77 and clip.threshold == 77
    assert "(estimate)" in clip.message  # no tokenizer in the test environment
    assert "t5-truncated" not in codes(f)
    very_long = " ".join(["an extraordinarily complicated description"] * 150)
    assert "t5-truncated" in codes(rules.lint(very_long))
    assert "clip-truncated" not in codes(rules.lint(long, max_clip_tokens=1000))


def test_token_estimates_are_plausible():
    c = rules.count_tokens("a photo of a cat")
    assert (c.clip, c.clip_exact) == (7, False)  # 5 words + begin + end, as CLIP tokenizes it
    assert c.t5 == 6 and c.source == {"clip": "estimate", "t5": "estimate"}
    # long rare words and digits cost more than short common ones
    assert rules.estimate_clip_tokens("photogrammetrically 2024") > rules.estimate_clip_tokens("cat dog")


def test_mixed_style_and_boilerplate():
    mixed = "ohwx, 1girl, solo, long hair, a woman standing in a field with a red dress"
    assert rules.caption_style(mixed, "ohwx") == "mixed"
    assert "mixed-style" in codes(rules.lint(mixed, "ohwx"))
    assert rules.caption_style("a woman standing in a field, smiling, in the sun") == "prose"
    assert rules.caption_style("1girl, solo, long hair, red dress") == "tags"
    f = rules.lint("The image shows a dog that appears to be sleeping on a bed")
    assert next(x for x in f if x.code == "boilerplate").value == ["the image shows", "appears to be"]


def test_lint_many_duplicates_and_outliers():
    texts = {f"img{i}.png": f"ohwx, a cat number {i} sitting on a chair" for i in range(9)}
    texts["dup1.png"] = texts["dup2.png"] = "ohwx, the same words on two images here"
    texts["long.png"] = "ohwx, " + " ".join(["word"] * 80)
    texts["none.png"] = None
    result = rules.lint_many(texts, "ohwx")
    assert "duplicate" in codes(result["dup1.png"]) and "duplicate" in codes(result["dup2.png"])
    assert "duplicate" not in codes(result["img1.png"])
    assert "length-outlier" in codes(result["long.png"])
    assert "length-outlier" not in codes(result["img3.png"])
    assert codes(result["none.png"]) == ["missing"]


@pytest.fixture
def ds(example_dataset):
    d = Dataset(example_dataset)
    d.scan()
    yield d
    d.close()


def test_bulk_prefix_is_undoable_as_one_operation(ds):
    before = {r.relpath: (ds.read_caption(r.relpath) or None) for r in ds.images()}
    report = rules.bulk_prefix(ds, "ohwx")
    assert sorted(report.changed) == [r.relpath for r in ds.images()]
    assert ds.read_caption("chelsea.png").text == (
        "ohwx, a tabby cat lying on a wooden floor, looking at the camera")
    assert ds.read_caption("horse.png").text == "ohwx"  # had no caption
    # running it again changes nothing
    assert rules.bulk_prefix(ds, "ohwx").changed == []
    undone = rules.undo_operation(ds, report.op_id)
    assert sorted(undone.changed) == sorted(report.changed)
    for rel, cap in before.items():
        now = ds.read_caption(rel)
        assert (now.text if now else None) == (cap.text if cap else None)
    with pytest.raises(LookupError):
        rules.undo_operation(ds, report.op_id)


def test_undo_operation_leaves_later_edits(ds):
    report = rules.bulk_suffix(ds, "film grain")
    assert ds.read_caption("coffee.png").text.endswith(", film grain")
    ds.write_caption("coffee.png", "my own words", source="user")
    undone = rules.undo_operation(ds, report.op_id)
    assert "coffee.png" in undone.skipped and ds.read_caption("coffee.png").text == "my own words"
    assert ds.read_caption("chelsea.png").text.rstrip().endswith("looking at the camera")


def test_bulk_replace_sort_and_dedup(ds):
    ds.write_caption("horse.png", "ohwx, zebra, Apple, horse, apple, mane")
    r = rules.bulk_dedup_tags(ds, ["horse.png"])
    assert ds.read_caption("horse.png").text == "ohwx, zebra, Apple, horse, mane" and r.changed
    rules.bulk_sort_tags(ds, ["horse.png"])
    assert ds.read_caption("horse.png").text == "ohwx, Apple, horse, mane, zebra"
    rules.bulk_replace(ds, r"\bhorse\b", "pony")
    assert ds.read_caption("horse.png").text == "ohwx, Apple, pony, mane, zebra"
    rules.bulk_replace(ds, "Apple, ", "", regex=False)
    assert ds.read_caption("horse.png").text == "ohwx, pony, mane, zebra"
    with pytest.raises(ValueError, match="invalid regular expression"):
        rules.bulk_replace(ds, "(", "x")
    with pytest.raises(ValueError, match="unknown sort order"):
        rules.bulk_sort_tags(ds, by="size")
    # each step is its own undoable change
    assert ds.undo_caption("horse.png") == "ohwx, Apple, pony, mane, zebra"
    ops = rules.operations(ds)
    assert {o["op_id"].split(":")[1] for o in ops} >= {"replace", "sort-tags", "dedup-tags"}


def test_sort_by_frequency(ds):
    ds.write_caption("horse.png", "ohwx, rare, common")
    ds.write_caption("rocket.jpg", "ohwx, common, other")
    rules.bulk_sort_tags(ds, ["horse.png"], by="frequency")
    assert ds.read_caption("horse.png").text == "ohwx, common, rare"


def test_exact_counts_with_a_local_tokenizer(tmp_path, monkeypatch):
    tk = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, "<|startoftext|>": 1, "<|endoftext|>": 2, "a": 3, "photo": 4, "of": 5, "cat": 6}
    tok = tk.Tokenizer(tk.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tk.pre_tokenizers.Whitespace()
    tok.post_processor = tk.processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", 1), ("<|endoftext|>", 2)])
    folder = tmp_path / "clip-tokenizer" / "tokenizer"
    folder.mkdir(parents=True)
    tok.save(str(folder / "tokenizer.json"))
    # a model folder with a tokenizer/ sub-folder is found, as laid out by diffusers
    monkeypatch.setenv(rules.CLIP_TOKENIZER_ENV, str(tmp_path / "clip-tokenizer"))
    counter = rules.TokenCounter()
    assert counter.exact == {"clip": True, "t5": False}
    text = "a photo of a cat , a cat"
    c = counter.count(text)
    assert c.clip == len(tok.encode(text).ids) == 10 and c.clip_exact
    assert c.source["clip"].endswith("tokenizer.json") and c.source["t5"] == "estimate"
    long = " ".join(["cat"] * 80)
    clip = next(f for f in rules.lint(long, counter=counter) if f.code == "clip-truncated")
    assert clip.value == 82 and "(estimate)" not in clip.message
    # a damaged file falls back to the estimate instead of failing
    (folder / "tokenizer.json").write_text("{not json")
    assert rules.TokenCounter().exact["clip"] is False


def test_draft_captions_are_recognised_and_edits_clear_the_flag():
    draft = "ohwx, horses, black-and-white image, landscape orientation, white and black tones"
    assert rules.is_draft_text(draft)
    f = next(x for x in rules.lint(draft, "ohwx") if x.code == "draft")
    assert f.severity == "warning" and "--refresh" in f.fix
    assert not rules.is_draft_text("ohwx, a black horse galloping on a white background")
    assert not rules.is_draft_text("ohwx, a colour image of a horse")

"""Florence-2: the missing-package / missing-model path and the post-processing of its output.

The weights cannot be fetched here, so generation itself is not run; the
samples below are in the two shapes Florence-2 output takes (the raw decode
with special tokens, and the dict of ``processor.post_process_generation``).
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from fluxgym_coach.captions import job as captioning
from fluxgym_coach.captions.backends import florence2
from fluxgym_coach.captions.backends.base import CaptionBackendError


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv(florence2.MODEL_DIR_ENV, raising=False)
    return tmp_path / "hf"


RAW_DECODE = ("</s><s>The image shows a green Volkswagen Beetle parked in front of a yellow building "
              "with two brown doors, surrounded by trees and a clear blue sky.</s><pad><pad>")
PARSED = {"<DETAILED_CAPTION>": "The image shows a black and white photograph of a man standing "
                                "behind a camera on a tripod in a park. "}


def test_postprocess_both_output_shapes():
    assert florence2.postprocess(RAW_DECODE) == (
        "a green Volkswagen Beetle parked in front of a yellow building with two brown doors, "
        "surrounded by trees and a clear blue sky.")
    assert florence2.postprocess(PARSED) == ("a black and white photograph of a man standing behind "
                                             "a camera on a tripod in a park.")
    assert florence2.postprocess({"<CAPTION>": "A cat on a sofa."}, "<CAPTION>") == "A cat on a sofa."
    with pytest.raises(CaptionBackendError, match="empty"):
        florence2.postprocess("</s><s></s>")


def test_missing_model_says_what_and_where(empty_hf_cache, scanned_example, tmp_path):
    problems = florence2.missing()
    assert any("no Florence-2 model found" in p for p in problems)
    model_msg = [p for p in problems if "model" in p and "found" in p][0]
    assert "multimodalart/Florence-2-large-no-flash-attn" in model_msg and str(empty_hf_cache) in model_msg
    if importlib.util.find_spec("transformers") is None:
        assert any("pip install 'fluxgym-coach[florence2]'" in p and "transformers" in p for p in problems)
    backend = captioning.get_caption_backend("florence2", model_path=str(tmp_path / "nowhere"))
    with pytest.raises(CaptionBackendError, match="Florence-2 cannot run") as info:
        asyncio.run(captioning.run_caption(scanned_example, backend))
    assert info.value.fatal and str(tmp_path / "nowhere") in info.value.reason
    assert not (scanned_example.root / "horse.txt").exists()


def test_model_folder_discovery(empty_hf_cache, tmp_path, monkeypatch):
    snap = empty_hf_cache / "models--multimodalart--Florence-2-large-no-flash-attn" / "snapshots" / "abcdef123456"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    assert florence2.find_model_dir()[0] is None  # no weights yet
    (snap / "model.safetensors").write_bytes(b"\0")
    assert florence2.find_model_dir()[0] == snap
    b = florence2.Florence2Captioner()
    assert b.identity == "florence2/multimodalart/Florence-2-large-no-flash-attn@abcdef12@1"
    assert not any("model found" in p for p in florence2.missing())
    mine = tmp_path / "my-florence"
    mine.mkdir()
    (mine / "config.json").write_text("{}")
    (mine / "pytorch_model.bin").write_bytes(b"\0")
    monkeypatch.setenv(florence2.MODEL_DIR_ENV, str(mine))
    assert florence2.find_model_dir()[0] == mine  # the environment variable wins over the cache
    with pytest.raises(ValueError, match="task"):
        florence2.Florence2Captioner(task="<OD>")

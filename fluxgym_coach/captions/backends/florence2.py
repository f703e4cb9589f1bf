"""Local Florence-2 captioning, the way Fluxgym does it (reference/fluxgym.md §3).

Fluxgym loads ``multimodalart/Florence-2-large-no-flash-attn`` with
``trust_remote_code``, fp16 on CUDA (fp32 on CPU), runs the task
``<DETAILED_CAPTION>`` with ``max_new_tokens=1024`` and ``num_beams=3``, and
deletes ``"The image shows "`` from the answer. This backend does the same
with three differences: it **never downloads** (``local_files_only``: the
weights must be in ``model_path``, ``$FLUXGYM_COACH_FLORENCE2_DIR`` or the
Hugging Face cache), it loads the model once per job rather than per click,
and the post-processing (:func:`postprocess`) also removes the special
tokens and other openers.

It needs the optional extra ``pip install 'fluxgym-coach[florence2]'``
(transformers, pinned below 4.50 as Fluxgym pins 4.49 because later versions
break the remote code, fluxgym #464; torch; einops and timm, which the remote
code imports). :func:`missing` lists what is absent; :meth:`check` turns that
list into one error that says how to fix each item.
"""

from __future__ import annotations

import asyncio
import glob
import importlib.util
import os
from pathlib import Path
from typing import Any

from .. import text as caption_rules
from ... import imaging
from .base import CaptionBackendError, CaptionRequest, CaptionResult

MODEL_DIR_ENV = "FLUXGYM_COACH_FLORENCE2_DIR"
#: Repositories whose Hugging Face cache snapshot is used when present (Fluxgym's first).
REPOS = ("multimodalart/Florence-2-large-no-flash-attn", "microsoft/Florence-2-large",
         "microsoft/Florence-2-base")
TASKS = ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>")
PACKAGES = {"transformers": "transformers", "torch": "torch", "einops": "einops", "timm": "timm"}
_WEIGHTS = ("*.safetensors", "pytorch_model*.bin")


def postprocess(raw: str | dict[str, Any], task: str = "<DETAILED_CAPTION>") -> str:
    """Caption text from Florence-2 output.

    ``raw`` is either the processor's ``post_process_generation`` result
    (``{"<DETAILED_CAPTION>": "The image shows ..."}``) or the raw decode with
    special tokens (``"</s><s>The image shows ...</s><pad>"``). Removes the
    special tokens, the opener ``"The image shows "`` (as Fluxgym) and the
    similar "The image depicts" / "This image features", and collapses
    whitespace. Raises CaptionBackendError when nothing is left.
    """
    text = raw.get(task, next(iter(raw.values()), "")) if isinstance(raw, dict) else raw
    text = caption_rules.clean_generated(str(text or ""))
    text = text.replace("The image shows ", "")  # Fluxgym's own rule, mid-text too
    if not text.strip():
        raise CaptionBackendError("Florence-2 returned an empty caption")
    return " ".join(text.split())


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        glob.glob(str(folder / pattern)) for pattern in _WEIGHTS)


def find_model_dir(model_path: str | Path | None = None) -> tuple[Path | None, list[str]]:
    """The local model folder to load, and the places looked at (for messages).

    Order: ``model_path``, ``$FLUXGYM_COACH_FLORENCE2_DIR``, then the Hugging
    Face cache snapshots of :data:`REPOS`. A folder counts when it has a
    ``config.json`` and weights (``*.safetensors`` or ``pytorch_model*.bin``).
    """
    from ..tokens import _hf_cache_dirs

    looked: list[str] = []
    candidates: list[Path] = []
    if model_path:
        candidates.append(Path(model_path).expanduser())
    env = os.environ.get(MODEL_DIR_ENV)
    if env:
        candidates.append(Path(env).expanduser())
    for cache in _hf_cache_dirs():
        for repo in REPOS:
            snaps = cache / f"models--{repo.replace('/', '--')}" / "snapshots"
            looked.append(str(snaps))
            candidates += [Path(p) for p in sorted(glob.glob(str(snaps / "*")))]
    for c in candidates:
        if str(c) not in looked:
            looked.insert(0, str(c))
        if _has_weights(c):
            return c, looked
    return None, looked


def missing(model_path: str | Path | None = None) -> list[str]:
    """What is missing to run Florence-2 here, one sentence per item (empty when ready)."""
    problems = []
    absent = [pkg for mod, pkg in PACKAGES.items() if importlib.util.find_spec(mod) is None]
    if absent:
        problems.append(f"Python packages not installed: {', '.join(absent)}. Install them with "
                        "pip install 'fluxgym-coach[florence2]'")
    folder, looked = find_model_dir(model_path)
    if folder is None:
        problems.append(
            "no Florence-2 model found on this machine (looked in: " + "; ".join(looked) + "). "
            f"On a machine with internet run `huggingface-cli download {REPOS[0]}` and copy the "
            f"folder here, then pass --model FOLDER or set ${MODEL_DIR_ENV}; nothing is downloaded "
            "automatically")
    return problems


def _model_name(folder: Path | None) -> str:
    """``models--org--name/snapshots/<rev>`` -> ``org/name@<rev[:8]>``; else the folder name."""
    if folder is None:
        return "unknown"
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        repo = folder.parent.parent.name[len("models--"):].replace("--", "/")
        return f"{repo}@{folder.name[:8]}"
    return folder.name


class Florence2Captioner:
    """Florence-2 from local files (see the module docstring).

    ``model_path``: model folder (else found by :func:`find_model_dir`);
    ``task``: one of :data:`TASKS`; ``max_new_tokens``, ``num_beams``: as
    Fluxgym (1024, 3); ``device``: ``"cuda"``, ``"cpu"`` or None (CUDA when
    available). Raises ValueError for an unknown task. Nothing is loaded
    before :meth:`check`.
    """

    name = "florence2"
    style = "prose"
    is_draft = False
    concurrency = 1

    def __init__(self, model_path: str | None = None, task: str = "<DETAILED_CAPTION>",
                 max_new_tokens: int = 1024, num_beams: int = 3, device: str | None = None,
                 concurrency: int = 1):
        if task not in TASKS:
            raise ValueError(f"Florence-2 task must be one of {', '.join(TASKS)}, not {task!r}")
        self.model_path = model_path
        self.task = task
        self.max_new_tokens = int(max_new_tokens)
        self.num_beams = int(num_beams)
        self.device = device
        self.concurrency = 1  # one model instance; generation is serialised
        folder, _ = find_model_dir(model_path)
        self._folder = folder
        self.identity = f"florence2/{_model_name(folder)}@1"
        self._model: Any = None
        self._processor: Any = None
        self._torch: Any = None
        self._dtype: Any = None

    def cache_params(self, request: CaptionRequest) -> dict[str, Any]:
        """Task and generation settings (the model folder is in the identity)."""
        return {"task": self.task, "max_new_tokens": self.max_new_tokens, "num_beams": self.num_beams}

    def _load(self) -> None:
        import torch  # optional dependency
        from transformers import AutoModelForCausalLM, AutoProcessor  # optional dependency

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        path = str(self._folder)
        self._model = AutoModelForCausalLM.from_pretrained(
            path, trust_remote_code=True, local_files_only=True, torch_dtype=dtype).to(device).eval()
        self._processor = AutoProcessor.from_pretrained(path, trust_remote_code=True,
                                                        local_files_only=True)
        self._torch, self._dtype, self.device = torch, dtype, device

    async def check(self) -> None:
        """Fail (fatal) with the list of what is missing; otherwise load the model (in a thread)."""
        problems = missing(self.model_path)
        if problems:
            raise CaptionBackendError("Florence-2 cannot run: " + " ".join(
                f"({i}) {p}." for i, p in enumerate(problems, 1)), fatal=True)
        if self._model is None:
            try:
                await asyncio.to_thread(self._load)
            except Exception as exc:  # transformers raises many kinds; report the cause
                raise CaptionBackendError(
                    f"Florence-2 failed to load from {self._folder}: {type(exc).__name__}: {exc}. "
                    "transformers 4.50+ breaks its remote code: pip install 'transformers<4.50'",
                    fatal=True) from exc

    def _generate(self, path: Path) -> str:
        image = imaging.load_upright_rgb(path)
        inputs = self._processor(text=self.task, images=image, return_tensors="pt")
        inputs = {k: (v.to(self.device, self._dtype) if v.is_floating_point() else v.to(self.device))
                  for k, v in inputs.items()}
        with self._torch.inference_mode():
            ids = self._model.generate(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"],
                                       max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                       do_sample=False)
        text = self._processor.batch_decode(ids, skip_special_tokens=False)[0]
        parsed = self._processor.post_process_generation(text, task=self.task,
                                                         image_size=(image.width, image.height))
        return postprocess(parsed, self.task)

    async def prepare(self, request: CaptionRequest) -> None:
        """Nothing to prepare before :meth:`caption`."""
        return None

    async def caption(self, request: CaptionRequest) -> CaptionResult:
        """Caption one image (generation in a thread)."""
        if self._model is None:
            await self.check()
        try:
            text = await asyncio.to_thread(self._generate, request.path)
        except imaging.ImageReadError as exc:
            raise CaptionBackendError(f"{request.relpath}: {exc.reason}") from exc
        return CaptionResult(text=text, model=self.identity)

    async def aclose(self) -> None:
        """Free the model (and the CUDA cache), as Fluxgym does after captioning."""
        if self._model is not None:
            self._model = self._processor = None
            torch = self._torch
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()

"""fluxgym-coach inside Panoptic 1.0: "Enhance for LoRA", "Caption", "Near duplicates", "Export to Fluxgym".

Targets the API of ``panoptic`` 1.0.0 as ``pip install panoptic`` installs
it (not the 0.7 API of the seeds): plugins are synchronous, actions are
called as ``fn(ctx, **inputs)`` from Panoptic's worker threads, instances are
``Instance(id, file_id, sha1)`` whose file path is ``Folder.path`` +
``File.name``, and ``sha1`` is the SHA-1 of the file's bytes.

Each action works on the images selected in Panoptic (all images when none),
through the same core functions as the ``fluxgym-coach`` command:

* **Enhance for LoRA** (``execute``): :func:`fluxgym_coach.core.enhance_images`
  on the files, results selected for export in the fluxgym-coach store of the
  image's root folder; the results are also copied to
  ``<project>/plugin_data/<plugin>/enhanced/``.
* **Caption** (``execute``): :func:`fluxgym_coach.core.caption_images`
  (backend from :func:`fluxgym_coach.core.captioner_from_settings` and the
  ``caption_*`` / ``forge_url`` / ``openai_base_url`` parameters) writes ``<stem>.txt`` sidecars next to the images (undoable with
  ``fluxgym-coach captions undo``) and mirrors each caption into a
  Panoptic text property ``caption``.
* **Near duplicates** (``group``): pHash of each file (fluxgym-coach's
  :mod:`~fluxgym_coach.imaging`), transitive groups within ``threshold``
  bits, plus exact duplicates (same sha1), returned as Panoptic groups with
  scores (lower is closer).
* **Export to Fluxgym** (``execute``): :func:`fluxgym_coach.export.fluxgym.export_dataset`
  of the selection (one root folder at a time).

An action that raises returns an ERROR notification with the traceback
(:func:`reports_errors`), like fluxgym-coach's own actions.

Register it with Panoptic (local path plugin)::

    panoptic plugins add fluxgym-coach -t path -s "$(python -c 'import fluxgym_coach.integrations.panoptic as m, os; print(os.path.dirname(m.__file__))')"

No ``from __future__ import annotations`` here: Panoptic 1.0 reads the raw
annotations of action parameters and silently drops string ones.
"""

import asyncio
import functools
import os
import shutil
import threading
import traceback
from collections.abc import Callable, Coroutine
from enum import Enum
from pathlib import Path
from typing import Any

from panoptic.core.databases.data.models import DataCommit, Sha1Value
from panoptic.core.databases.entity_schema import OP_CREATE
from panoptic.core.plugin.plugin import APlugin
from panoptic.models.action_models import (ActionContext, ActionResult, FolderPath, Group, Notif, NotifType,
                                           Score, ScoreList)
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ... import imaging
from ...statuses import CaptionStatus, EnhanceStatus
from ...plugins.builtin.similarity import (DEFAULT_THRESHOLD, exact_duplicate_groups, hamming_matrix,
                                           hex_to_uint64, near_duplicate_groups)

LABELS = {"enhance_for_lora": "Enhance for LoRA", "caption": "Caption", "near_duplicates": "Near duplicates",
          "export_to_fluxgym": "Export to Fluxgym"}


class CaptionBackendName(str, Enum):
    """Caption backends offered in Panoptic's form (a choice list)."""

    draft = "draft"
    openai = "openai"
    forge = "forge"
    florence2 = "florence2"


class EnhanceBackendName(str, Enum):
    """Enhancement backends offered in Panoptic's form."""

    local = "local"
    forge = "forge"


#: Training resolutions accepted (kohya's ``resolution``, pixels).
RESOLUTION_RANGE = (256, 4096)


class FluxgymCoachParams(BaseModel):
    """Defaults of the fluxgym-coach actions in this project.
    @trigger: trigger word put first in captions and required by the export
    @resolution: training resolution in pixels (kohya's side length), 256 to 4096
    @caption_backend: captioner: draft (offline), openai, forge or florence2
    @caption_model: the captioner's model: the model name for openai (e.g. llava), clip or deepdanbooru for forge, the local model folder for florence2
    @openai_base_url: OpenAI-compatible server for the openai captioner (default http://127.0.0.1:11434/v1, Ollama); the key is read from $OPENAI_API_KEY
    @enhance_backend: local (embedded Pillow) or forge
    @forge_url: Forge / A1111 API address, used by the forge enhancer and the forge captioner (default http://127.0.0.1:7860)
    """

    # Panoptic builds its form from this class's signature and shows only plain
    # annotations (int, str, an Enum...): a constrained field (Field(ge=...),
    # Annotated[...]) would be left out, so limits are checked by validators.
    model_config = ConfigDict(validate_assignment=True)

    trigger: str = ""
    resolution: int = 1024
    caption_backend: CaptionBackendName = CaptionBackendName.draft
    caption_model: str = ""
    openai_base_url: str = ""
    enhance_backend: EnhanceBackendName = EnhanceBackendName.local
    forge_url: str = ""

    @field_validator("resolution")
    @classmethod
    def _resolution_in_range(cls, value: int) -> int:
        low, high = RESOLUTION_RANGE
        if not low <= value <= high:
            raise ValueError(f"resolution must be {low} to {high} pixels, not {value}")
        return value

    @field_validator("trigger", "caption_model", "openai_base_url", "forge_url")
    @classmethod
    def _stripped(cls, value: str) -> str:
        return value.strip()

    @field_validator("openai_base_url", "forge_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// address")
        return value

    def captioner_options(self) -> dict[str, str]:
        """Options of :func:`fluxgym_coach.core.captioner_from_settings` for the chosen
        caption backend (empty values left out, so the backend's defaults apply)."""
        backend = self.caption_backend.value
        options = {"openai": {"model": self.caption_model, "base_url": self.openai_base_url},
                   "forge": {"model": self.caption_model, "url": self.forge_url},
                   "florence2": {"model_path": self.caption_model}}.get(backend, {})
        return {k: v for k, v in options.items() if v}


def reports_errors(fn: Callable[..., ActionResult]) -> Callable[..., ActionResult]:
    """Turn an exception of an action into an ERROR notification with the traceback,
    as fluxgym-coach's own plugin system does (Panoptic 1.0 would answer HTTP 500).
    ``functools.wraps`` keeps the signature Panoptic introspects."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> ActionResult:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            return ActionResult(notifs=[Notif(NotifType.ERROR, LABELS.get(fn.__name__, fn.__name__),
                                              f"{type(exc).__name__}: {exc}", data={"traceback": tb})])
    return wrapper


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine from Panoptic's synchronous action threads (a loop of our own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=target, name="fluxgym-coach-action")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


class Selected:
    """One selected Panoptic instance with its file ``path``, its ``root`` folder
    (the imported folder) and ``relpath`` inside it."""

    def __init__(self, instance: Any, path: str, root: str):
        self.instance = instance
        self.id: int = instance.id
        self.sha1: str = instance.sha1
        self.path = path
        self.root = root
        self.relpath = os.path.relpath(path, root).replace(os.sep, "/")


class FluxgymCoachPlugin(APlugin):
    """Prepare FLUX LoRA datasets from Panoptic: enhance, caption, near duplicates, export to Fluxgym."""

    def __init__(self, project: Any, plugin_path: str, name: str):
        super().__init__(name=name, project=project, plugin_path=plugin_path)
        self.params = FluxgymCoachParams()
        for fn, hooks in ((self.enhance_for_lora, ["execute"]), (self.caption, ["execute"]),
                          (self.near_duplicates, ["group"]), (self.export_to_fluxgym, ["execute"])):
            desc = self.add_action_easy(fn, hooks)
            desc.label = LABELS[fn.__name__]

    def update_params(self, params: Any) -> FluxgymCoachParams:
        """Validate and store new parameters (Panoptic's own ``update_params`` copies
        them unchecked, so ``resolution="abc"`` would be kept). Raises ValueError
        naming each refused field; nothing is changed then."""
        data = params if isinstance(params, dict) else params.model_dump()
        try:
            new = FluxgymCoachParams.model_validate({**self.params.model_dump(), **data})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"fluxgym-coach parameters not changed: {problems}") from None
        self.params = new
        self.project.save_params(new.model_dump(mode="json"))
        return new

    # -- selection ------------------------------------------------------------------------
    def selected(self, ctx: ActionContext) -> list[Selected]:
        """The selected instances (all when none) that are local files."""
        filters = {"id": list(ctx.instance_ids)} if ctx.instance_ids else {}
        instances = self.project.get_instances(**filters)
        files = {f.id: f for f in self.project.get_files(id=[i.file_id for i in instances])} if instances else {}
        folders = {f.id: f for f in self.project.get_folders()}

        def root_of(folder_id: int) -> Any:
            folder = folders[folder_id]
            while folder.parent is not None and folder.parent in folders:
                folder = folders[folder.parent]
            return folder

        out = []
        for inst in instances:
            f = files.get(inst.file_id)
            if f is None or f.folder_id not in folders or not folders[f.folder_id].path:
                continue
            path = os.path.join(folders[f.folder_id].path, f.name)
            if os.path.isfile(path):
                out.append(Selected(inst, path, root_of(f.folder_id).path))
        return out

    @staticmethod
    def _by_root(items: list[Selected]) -> dict[str, list[Selected]]:
        roots: dict[str, list[Selected]] = {}
        for it in items:
            roots.setdefault(it.root, []).append(it)
        return roots

    # -- actions ----------------------------------------------------------------------------
    @reports_errors
    def enhance_for_lora(self, ctx: ActionContext, target_short_side: int = 0) -> ActionResult:
        """Upscale (and colorize black-and-white, with Forge) the selected images for LoRA training.
        @target_short_side: upscale images whose shorter side is below this many pixels (0 = to the dataset's resolution: the scale each image needs, at most x8)
        """
        from ... import core
        from ...enhance.backends.base import EnhanceParams
        from ...dataset import Dataset
        from ...cache import ImageCache

        items = self.selected(ctx)
        out_dir = self.data_path / "enhanced"
        out_dir.mkdir(parents=True, exist_ok=True)
        counts: dict[str, int] = {}
        written: list[str] = []
        failed: dict[str, str] = {}
        for root, group in self._by_root(items).items():
            backend = core.backend_from_settings(
                backend=self.params.enhance_backend.value,
                api_urls=[self.params.forge_url] if self.params.forge_url else None)
            cache = ImageCache()
            with Dataset(root) as dataset:
                dataset.scan()

                async def go() -> Any:
                    try:
                        return await core.enhance_images(dataset, [it.relpath for it in group], backend,
                                                         EnhanceParams(target_short_side=target_short_side or None),
                                                         cache=cache)
                    finally:
                        await backend.aclose()

                report = _run(go())
            for o in report.outcomes.values():
                counts[o.status] = counts.get(o.status, 0) + 1
                if o.status == EnhanceStatus.FAILED:
                    failed[o.name] = o.reason
                if o.entry is not None and o.status in (EnhanceStatus.ENHANCED, EnhanceStatus.CACHED):
                    dst = out_dir / (o.name.replace("/", "__").rsplit(".", 1)[0] + Path(o.entry.path).suffix)
                    shutil.copyfile(o.entry.path, dst)
                    written.append(str(dst))
            cache.close()
        message = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no local image selected"
        return ActionResult(notifs=[Notif(NotifType.ERROR if failed else NotifType.INFO, "Enhance for LoRA",
                                          f"{message}; results in {out_dir}", data={"failed": failed} if failed else None)],
                            value={"counts": counts, "files": written})

    @reports_errors
    def caption(self, ctx: ActionContext, overwrite: bool = False) -> ActionResult:
        """Write a caption (.txt sidecar) for each selected image and show it in the 'caption' property.
        @overwrite: replace existing captions (otherwise only images without one are captioned)
        """
        from ... import core
        from ...dataset import Dataset

        items = self.selected(ctx)
        counts: dict[str, int] = {}
        texts: dict[str, str] = {}
        failed: dict[str, str] = {}
        for root, group in self._by_root(items).items():
            with Dataset(root) as dataset:
                dataset.scan()
                backend = core.captioner_from_settings(backend=self.params.caption_backend.value,
                                                       **self.params.captioner_options())

                async def go() -> Any:
                    try:
                        return await core.caption_images(dataset, [it.relpath for it in group], backend,
                                                         mode="overwrite" if overwrite else "only-missing",
                                                         trigger=self.params.trigger or None)
                    finally:
                        close = getattr(backend, "aclose", None)
                        if close is not None:
                            await close()

                report = _run(go())
                if report.fatal:
                    raise RuntimeError(f"captioning stopped: {report.fatal}")
                for o in report.outcomes.values():
                    counts[o.status] = counts.get(o.status, 0) + 1
                    if o.status == CaptionStatus.FAILED:
                        failed[o.relpath] = o.reason
                for it in group:
                    cap = dataset.read_caption(it.relpath)
                    if cap is not None and not cap.error:
                        texts[it.sha1] = cap.text.strip()
        prop = self._caption_property()
        if texts:
            self.project.apply_commit(DataCommit(sha1_values=[
                Sha1Value(prop.id, sha1, text, operation=OP_CREATE) for sha1, text in texts.items()]))
        message = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no local image selected"
        return ActionResult(notifs=[Notif(NotifType.ERROR if failed else NotifType.INFO, "Caption", message,
                                          data={"failed": failed} if failed else None)],
                            value={"counts": counts, "captions": len(texts)})

    def _caption_property(self) -> Any:
        for prop in self.project.get_properties():
            if prop.name == "caption" and prop.dtype == "text":
                return prop
        return self.project.add_property("caption", "text", mode="sha1")

    @reports_errors
    def near_duplicates(self, ctx: ActionContext, threshold: int = DEFAULT_THRESHOLD) -> ActionResult:
        """Group near-duplicate images (perceptual hash, transitive) and exact copies.
        @threshold: largest pHash distance in bits that joins two images (0-64)
        """
        items = self.selected(ctx)
        groups: list[Group] = []
        for idxs in exact_duplicate_groups([it.sha1 for it in items]):
            groups.append(Group(ids=[items[k].id for k in idxs], name="Exact copies",
                                scores=ScoreList([0.0] * len(idxs), 0, 64, "pHash distance", max_is_best=False),
                                score=Score(0.0, 0, 64, "largest pHash distance", max_is_best=False)))
        unique = list({it.sha1: it for it in items}.values())
        hashes: list[str] = []
        kept: list[Selected] = []
        for it in unique:
            try:
                hashes.append(imaging.measure(imaging.open_image(it.path)).phash)
                kept.append(it)
            except imaging.ImageReadError:
                continue
        arr = hex_to_uint64(hashes)
        for idxs in near_duplicate_groups(arr, threshold):
            d = hamming_matrix(arr[idxs], arr[idxs])
            sha_dist = {kept[k].sha1: float(d[0, n]) for n, k in enumerate(idxs)}
            members = sorted((it for it in items if it.sha1 in sha_dist), key=lambda it: (sha_dist[it.sha1], it.path))
            groups.append(Group(ids=[it.id for it in members],
                                scores=ScoreList([sha_dist[it.sha1] for it in members], 0, 64,
                                                 f"pHash distance to {os.path.basename(kept[idxs[0]].path)}",
                                                 max_is_best=False),
                                score=Score(float(d.max()), 0, 64, "largest pHash distance", max_is_best=False),
                                name=f"Near duplicates of {os.path.basename(kept[idxs[0]].path)}"))
        return ActionResult(groups=groups, notifs=[Notif(NotifType.INFO, "Near duplicates",
                                                         f"{len(groups)} groups among {len(items)} images "
                                                         f"(threshold {threshold} bits)")])

    @reports_errors
    def export_to_fluxgym(self, ctx: ActionContext, out_dir: FolderPath, name: str, force: bool = False) -> ActionResult:
        """Export the selected images and captions to a Fluxgym folder (datasets/<name>/ and outputs/<name>/dataset.toml).
        @out_dir: the Fluxgym folder
        @name: LoRA name
        @force: replace an earlier export with the same name
        """
        from ...dataset import Dataset
        from ...export.fluxgym import export_dataset

        if not self.params.trigger:
            raise ValueError("set the trigger word in the fluxgym-coach plugin parameters first")
        items = self.selected(ctx)
        roots = self._by_root(items)
        if len(roots) != 1:
            raise ValueError(f"select images of one imported folder (got {len(roots)}: {', '.join(roots) or 'none'})")
        (root, group), = roots.items()
        with Dataset(root) as dataset:
            dataset.scan()
            report = export_dataset(dataset, out_dir, name, self.params.trigger, resolution=self.params.resolution,
                                    force=force, relpaths=[it.relpath for it in group])
        failed = dict(report.failed)
        return ActionResult(notifs=[Notif(NotifType.ERROR if failed else NotifType.INFO, "Export to Fluxgym",
                                          f"{len(report.files)} images in {report.dataset_dir}; "
                                          f"config {report.toml_path}",
                                          data={"failed": failed, "skipped": dict(report.skipped)})],
                            value={"dataset_dir": str(report.dataset_dir), "toml": str(report.toml_path),
                                   "files": len(report.files)})


__all__ = ["CaptionBackendName", "EnhanceBackendName", "FluxgymCoachParams", "FluxgymCoachPlugin", "LABELS",
           "RESOLUTION_RANGE", "reports_errors"]

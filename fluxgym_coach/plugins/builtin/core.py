"""The built-in ``core`` plugin: fluxgym-coach's own features as actions.

So every front end (CLI ``plugins run``, the TUI command palette, the Panoptic
adapter) sees one catalogue, enhance, caption, audit and export are actions
here. Each one only calls the core job API (:mod:`fluxgym_coach.core`), the
same functions the CLI commands and the TUI call:

* ``enhance``: :func:`fluxgym_coach.core.enhance_images` (results go to the
  cache and are selected for export, status ``pending``, where the user has
  not decided; originals are untouched);
* ``caption``: :func:`fluxgym_coach.core.caption_images`;
* ``audit``: :func:`fluxgym_coach.core.audit_dataset`;
* ``export``: :func:`fluxgym_coach.core.export_dataset`.
"""

from enum import Enum
from pathlib import Path

from ... import core
from ...enhance.backends.base import EnhanceParams
from ...settings import load_settings
from ...statuses import CaptionStatus, EnhanceStatus
from ..models import (ActionContext, ActionResult, Group, Notif, NotifFunction, NotifType, Score,
                      ScoreList)
from ..plugin import APlugin


class CaptionMode(Enum):
    """What ``caption`` does with images that already have a caption (see ``fluxgym-coach caption``)."""

    only_missing = "only-missing"
    refresh = "refresh"
    overwrite = "overwrite"
    propose = "propose"


class EnhanceBackendName(Enum):
    """Enhancement engine: the embedded Pillow upscaler or a Forge/A1111 server."""

    local = "local"
    forge = "forge"


class CorePlugin(APlugin):
    """fluxgym-coach's enhance, caption, audit and export, as plugin actions."""

    def __init__(self, project, plugin_path: str, name: str):
        super().__init__(project=project, plugin_path=plugin_path, name=name)
        self.enhance_description = self.add_action_easy(self.enhance, ["execute"])
        self.caption_description = self.add_action_easy(self.caption, ["execute"])
        self.audit_description = self.add_action_easy(self.audit, ["execute", "group"])
        self.export_description = self.add_action_easy(self.export, ["execute"])

    async def _relpaths(self, ctx: ActionContext) -> list[str] | None:
        if ctx.instance_ids is None:
            return None
        return [i.relpath for i in await self.project.get_instances(ids=ctx.instance_ids)]

    async def enhance(self, context: ActionContext, backend: EnhanceBackendName = EnhanceBackendName.local,
                      target_short_side: int = 0, colorize: bool = True, forge_url: str = "") -> ActionResult:
        """Upscale (and colorize black-and-white) images for LoRA training; originals are untouched.
        @backend: local (embedded Pillow) or forge (Stable Diffusion Forge / A1111 API)
        @target_short_side: upscale images whose shorter side is below this many pixels (0 = to the dataset's resolution: the scale each image needs, at most x8)
        @colorize: colorize black-and-white images (Forge only)
        @forge_url: API address of the Forge server (forge backend)
        """
        instances = await self.project.get_instances(ids=context.instance_ids)
        dataset = self._project.dataset
        engine = core.backend_from_settings(
            load_settings(dataset.store), backend=backend.value,
            api_urls=[forge_url] if backend is EnhanceBackendName.forge and forge_url else None)
        params = EnhanceParams(target_short_side=target_short_side or None, colorize=colorize)
        try:
            report = await core.enhance_images(dataset, [i.relpath for i in instances], engine, params)
        finally:
            await engine.aclose()
        by_rel = {i.relpath: i for i in instances}
        counts: dict[str, int] = {}
        for o in report.outcomes.values():
            counts[o.status] = counts.get(o.status, 0) + 1
        done = [o for o in report.outcomes.values() if o.status in (EnhanceStatus.ENHANCED, EnhanceStatus.CACHED)
                and o.name in by_rel]
        failed = {o.name: o.reason for o in report.outcomes.values() if o.status == EnhanceStatus.FAILED}
        notifs = [Notif(NotifType.ERROR if failed else NotifType.INFO, "enhance",
                        ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing to do",
                        data={"failed": failed} if failed else None)]
        groups = [Group(ids=[by_rel[o.name].id for o in done], name="Enhanced images")] if done else []
        return ActionResult(groups=groups, notifs=notifs, value=counts)

    async def caption(self, context: ActionContext, backend: str = "",
                      mode: CaptionMode = CaptionMode.only_missing, trigger: str = "") -> ActionResult:
        """Write captions (sidecar .txt files; every change can be undone).
        @backend: draft (offline), openai, forge or florence2 (empty = the dataset's saved backend)
        @mode: only-missing, refresh, overwrite or propose
        @trigger: trigger word put first in every caption (empty = the dataset's)
        """
        relpaths = await self._relpaths(context)
        dataset = self._project.dataset
        engine = core.captioner_from_settings(load_settings(dataset.store), backend=backend or None)
        report = await core.caption_images(dataset, relpaths, engine, mode=mode.value,
                                           trigger=trigger or None)
        counts = report.counts()
        failed = {o.relpath: o.reason for o in report.outcomes.values() if o.status == CaptionStatus.FAILED}
        kind = NotifType.ERROR if report.fatal or failed else NotifType.INFO
        message = report.fatal or (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing to do")
        return ActionResult(notifs=[Notif(kind, "caption", message, data={"failed": failed} if failed else None)],
                            value=counts)

    async def audit(self, context: ActionContext, resolution: int = 1024, trigger: str = "") -> ActionResult:
        """Audit image quality and captions for training at a resolution; one group per finding.
        @resolution: kohya's training resolution in pixels (side length)
        @trigger: trigger word the captions should start with (empty = not checked)
        """
        report = await core.audit_dataset(self._project.dataset, resolution=resolution,
                                          trigger=trigger or None, rescan=False)
        instances = await self.project.get_instances(ids=context.instance_ids)
        by_rel = {i.relpath: i for i in instances}
        groups = []
        for code, rels in report.by_code().items():
            ids = [by_rel[r].id for r in rels if r in by_rel]
            if ids:
                groups.append(Group(ids=ids, name=f"Finding: {code}",
                                    score=Score(float(len(ids)), 0.0, float(len(by_rel)), "images with this finding",
                                                max_is_best=False)))
        for g in report.groups:
            ids = [by_rel[r].id for r in g.members if r in by_rel]
            if len(ids) > 1:
                groups.append(Group(ids=ids, name=f"{g.kind} duplicates (keep {g.keeper})",
                                    scores=ScoreList([0.0 if r == g.keeper else 1.0
                                                      for r in g.members if r in by_rel],
                                                     0.0, 1.0, "0 = the one to keep", max_is_best=False)))
        counts = report.counts()
        notif = Notif(NotifType.WARNING if report.exit_code() else NotifType.INFO, "audit",
                      ", ".join(f"{v} {k}" for k, v in counts.items()),
                      data={"by_code": {k: len(v) for k, v in report.by_code().items()}})
        flagged = [by_rel[r].id for r in report.flagged() if r in by_rel]
        if flagged:
            notif.functions = [NotifFunction(self.enhance_description.id, ActionContext(instance_ids=flagged),
                                             f"Enhance the {len(flagged)} flagged images")]
        return ActionResult(groups=groups, notifs=[notif], value=counts)

    async def export(self, context: ActionContext, out_dir: Path, name: str, trigger: str,
                     resolution: int = 1024, repeats: int = 10, force: bool = False) -> ActionResult:
        """Export the dataset (selected variants and captions) where Fluxgym and sd-scripts read it.
        @out_dir: the Fluxgym folder (datasets/<name>/ and outputs/<name>/dataset.toml are written there)
        @name: LoRA name
        @trigger: trigger word (put first in every caption)
        @resolution: training resolution in pixels
        @repeats: kohya num_repeats
        @force: replace an earlier export of the same name
        """
        relpaths = await self._relpaths(context)
        report = await core.export_dataset(self._project.dataset, out_dir, name, trigger,
                                           resolution=resolution, repeats=repeats, rescan=False,
                                           force=force, relpaths=relpaths)
        failed = dict(report.failed)
        message = (f"{len(report.files)} images exported to {report.dataset_dir}; "
                   f"config {report.toml_path}")
        notifs = [Notif(NotifType.ERROR if failed else NotifType.INFO, "export", message,
                        data={"failed": failed, "skipped": dict(report.skipped),
                              "warnings": dict(report.warnings)})]
        return ActionResult(notifs=notifs, value={"dataset_dir": str(report.dataset_dir),
                                                  "toml": str(report.toml_path), "files": len(report.files),
                                                  "failed": len(failed), "skipped": len(report.skipped)})


plugin_class = CorePlugin

__all__ = ["CaptionMode", "CorePlugin", "EnhanceBackendName", "plugin_class"]

"""Export for Fluxgym / kohya sd-scripts: the form, then :func:`core.export_dataset`
in a worker, then one notification that sums up the report."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from textual import work

from ...statuses import JobStatus
from ... import core
from ...settings import load_settings, update_settings
from ..jobs import JobSink
from ..screens.forms import Field, FormScreen

#: Where earlier versions kept the export form's values (read by :mod:`fluxgym_coach.settings`
#: on a dataset's first load; the form now reads and writes the typed dataset settings).
EXPORT_KEY = "tui.export"


class ExportActions:
    """The export form and job: the form is pre-filled from the dataset's typed settings
    (trigger word, resolution, repeats, ``export`` section) and the job is
    :func:`core.export_dataset`, which decides which images go out."""

    def action_export(self) -> None:
        """Open the export form, then export in a worker."""
        settings = load_settings(self.dataset.store)
        saved = settings.export
        fields = [
            Field("out_dir", "output folder", saved.out_dir or str(self.dataset.root.parent / "fluxgym")),
            Field("name", "dataset name", saved.name or self.dataset.root.name),
            Field("trigger", "trigger word", settings.trigger or ""),
            Field("resolution", "resolution", str(settings.resolution)),
            Field("repeats", "repeats", str(settings.repeats)),
            Field("vram", "train.sh VRAM (20G/16G/12G)", saved.vram),
            # overwriting is asked each time, never remembered (a destructive choice)
            Field("force", "overwrite (y/n)", "n"),
            Field("only_accepted", "only accepted (y/n)", "y" if saved.only_accepted else "n"),
        ]
        self.push_screen(FormScreen("Export for Fluxgym / kohya sd-scripts", fields, validate_export,
                                    "Export", note="Each image is exported as its selected variant: "
                                                   "the accepted enhanced result, else the original.",
                                    id="export-form"), self._start_export)

    def _start_export(self, opts: dict[str, Any] | None) -> None:
        if not opts:
            return
        try:  # the next form starts from these values, even when this export fails
            update_settings(self.dataset.store, trigger=opts["trigger"], resolution=opts["resolution"],
                            repeats=opts["repeats"], export={k: opts[k] for k in EXPORT_FIELDS})
        except ValueError:  # a value the settings refuse (e.g. resolution over 4096): the export says why
            pass
        sink = self._new_job("export", "Export", len(self.index.rows))
        sink.worker = self._export_worker(sink, opts)

    @work(exclusive=True, group="export", exit_on_error=False)
    async def _export_worker(self, sink: JobSink, opts: dict[str, Any]) -> None:
        """:func:`core.export_dataset` in an async worker; ``Worker.cancel()`` stops it at the
        next image (the core's cancel token); exporting again with overwrite redoes it."""
        try:
            report = await core.export_dataset(
                self.dataset, Path(opts["out_dir"]), opts["name"], opts["trigger"],
                resolution=opts["resolution"], repeats=opts["repeats"], rescan=False,
                only_accepted=opts["only_accepted"], force=opts["force"], on_event=sink,
                cache=self.cache, vram=opts["vram"])
        except asyncio.CancelledError:
            sink.finish(JobStatus.CANCELLED)
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. the folder exists without --force
            sink.fail(f"export stopped: {exc}")
            return
        sink.finish(JobStatus.DONE)
        self.notify(export_summary(report, opts["resolution"]), title="export done", timeout=10)


#: The fields of the export form kept in the settings' ``export`` section.
EXPORT_FIELDS = ("out_dir", "name", "vram", "only_accepted")


def export_summary(report: Any, resolution: int) -> str:
    """The notification of a finished export: where the files went, then one note per
    thing to look at (below the resolution, placeholder captions, skipped, failed,
    no Fluxgym there, models missing)."""
    notes = []
    if report.below_resolution:
        notes.append(f"{len(report.below_resolution)} below {resolution} px (enhance them first)")
    if report.placeholders:
        notes.append(f"{len(report.placeholders)} with the trigger word as placeholder caption")
    if report.skipped:
        notes.append(_skipped_note(report.skipped))
    if report.failed:
        notes.append(f"{len(report.failed)} failed")
    if not report.fluxgym_root:
        notes.append("no sd-scripts/ there: run train.sh from your Fluxgym folder")
    elif report.missing_models:
        notes.append(f"train.sh needs models not downloaded yet: {', '.join(report.missing_models)}")
    return (f"{len(report.files)} images to {report.dataset_dir}; dataset.toml and train.sh in "
            f"{report.outputs_dir}" + ("\n" + "; ".join(notes) if notes else ""))


def _skipped_note(skipped: dict[str, str]) -> str:
    """``"3 skipped: 2 excluded from the export in the review, 1 unreadable (a.jpg)"``."""
    from ...export.fluxgym import EXCLUDED_REASON

    excluded = [r for r, why in skipped.items() if why == EXCLUDED_REASON]
    unreadable = [r for r in skipped if r not in excluded]
    parts = []
    if excluded:
        parts.append(f"{len(excluded)} excluded from the export in the review")
    if unreadable:
        parts.append(f"{len(unreadable)} unreadable ({', '.join(unreadable[:3])}"
                     + (", ..." if len(unreadable) > 3 else "") + ")")
    return f"{len(skipped)} skipped: " + ", ".join(parts)


def validate_export(v: dict[str, str]) -> dict[str, Any]:
    """Parse the export form."""
    if not v["out_dir"].strip():
        raise ValueError("output folder: required")
    if not v["name"].strip():
        raise ValueError("dataset name: required")
    try:
        resolution, repeats = int(v["resolution"]), int(v["repeats"])
    except ValueError:
        raise ValueError("resolution and repeats are whole numbers") from None
    if resolution < 256 or repeats < 1:
        raise ValueError("resolution at least 256, repeats at least 1")
    from ...export.train_script import VRAM_CHOICES

    vram = v.get("vram", "20G").strip().upper()
    vram = vram if vram.endswith("G") else vram + "G"
    if vram not in VRAM_CHOICES:
        raise ValueError(f"train.sh VRAM: one of {', '.join(VRAM_CHOICES)}")
    return {"out_dir": os.path.expanduser(v["out_dir"].strip()), "name": v["name"].strip(),
            "trigger": v["trigger"].strip(), "resolution": resolution, "repeats": repeats,
            "vram": vram,
            "force": _yes(v["force"]), "only_accepted": _yes(v.get("only_accepted", "n"))}


def _yes(text: str) -> bool:
    return text.strip().lower() in ("y", "yes", "1", "true")

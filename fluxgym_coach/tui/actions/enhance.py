"""Enhancement: the current image (``p``), the marked / in-view ones (``b``),
reprocessing with new parameters (``r``), through :func:`core.enhance_images`."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from textual import work

from ...statuses import JobStatus
from ... import core
from ...enhance.backends.base import BackendError, EnhanceParams
from ...feedback import REPROCESS, Decision
from ...settings import update_settings
from ..jobs import JobSink
from ..messages import RowsChanged
from ..live import remember_job
from ..model import Row
from ..screens.forms import ConfirmScreen, Field, FormScreen

#: Where earlier versions kept the last parameters used in the TUI (read by
#: :mod:`fluxgym_coach.settings` on a dataset's first load; now ``settings.enhance.params``).
PARAMS_KEY = "tui.enhance_params"


class EnhanceActions:
    """Enhance and reprocess images."""

    def last_params(self, row: Row | None = None) -> EnhanceParams:
        """The parameters of the last enhancement run from the TUI, else the suggested defaults."""
        return self.params_with_origin(row)[0]

    def params_with_origin(self, row: Row | None = None) -> tuple[EnhanceParams, str]:
        """``(params, where they come from)``, in the core's order of the defaults
        (:func:`core.enhance_defaults`): the last values used on this dataset, else what
        the learning loop suggests for the image's category, else the shipped defaults;
        the size rule aims at the dataset's resolution setting."""
        try:
            found = core.enhance_defaults(self.dataset, category=row.category if row is not None else None)
        except Exception:  # noqa: BLE001 - a damaged store must not stop the review
            return EnhanceParams(), "the shipped defaults"
        return found.params, found.origin

    def action_enhance_current(self) -> None:
        """Enhance the current image with the last used parameters."""
        row = self.current
        if row is not None:
            self.start_enhance([row], self.last_params(row))

    def action_enhance_batch(self) -> None:
        """Enhance the marked images, or every image in view."""
        rows = self._bulk_targets()
        if not rows:
            return
        params = self.last_params()
        what = self.index.describe_targets(rows)
        backend = "the Forge server" if self.backend_name == "forge" else "the local upscaler"
        size = params.size_label()
        self.push_screen(
            ConfirmScreen(f"Enhance {what} with {backend}, {size}, "
                          f"upscaler {params.upscaler}?\nResults already in the cache are reused."),
            lambda yes: self.start_enhance(rows, params) if yes else None)

    def action_reprocess(self) -> None:
        """Open the parameters form, then enhance the current image with them."""
        row = self.current
        if row is None:
            return
        params, origin = self.params_with_origin(row)
        self.push_screen(params_form(params, row.relpath, origin),
                         partial(self._reprocess_with, row.relpath))

    def _reprocess_with(self, relpath: str, params: EnhanceParams | None) -> None:
        if params is None:
            return
        row = self.index.by_relpath.get(relpath)
        if row is None:
            return
        self.record(Decision(
            relpath, REPROCESS, digest=row.record.digest, variant=self.shown_variant(row),
            params=params.to_dict(), backend="forge" if self.backend_name == "forge" else "local", source="tui"))
        self.start_enhance([row], params)

    def _make_backend(self) -> Any:
        """The enhancement backend of this review (:func:`core.backend_from_settings` with the
        backend name, servers and credentials the ``tui`` command resolved)."""
        return core.backend_from_settings(None, backend=self.backend_name, api_urls=self.api_urls or None,
                                          api_auth=self.api_auth, **self.backend_options)

    def start_enhance(self, rows: list[Row], params: EnhanceParams) -> str:
        """Start an enhancement job for ``rows``; returns the job key."""
        remember_job(self, "enhance", [r.relpath for r in rows], params.to_dict())  # for a resume
        # the next form starts from these values, even when this job fails to start
        update_settings(self.dataset.store, enhance={"params": params.to_dict()})
        label = "Enhance" if len(rows) > 1 else "Enhance 1"
        sink = self._new_job("enhance", label, len(rows))
        sink.worker = self._enhance_worker(sink, [r.relpath for r in rows], params)
        return sink.progress.key

    @work(group="enhance", exit_on_error=False)
    async def _enhance_worker(self, sink: JobSink, relpaths: list[str], params: EnhanceParams) -> None:
        """:func:`core.enhance_images` in an async worker; ``Worker.cancel()`` (``c``, quitting)
        stops it after the chunks in flight (see :meth:`JobActions.run_cancellable`)."""
        try:
            backend = await asyncio.to_thread(self._make_backend)  # `auto` may load a model
        except Exception as exc:  # noqa: BLE001 - e.g. an engine that cannot start
            sink.fail(getattr(exc, "reason", None) or f"enhancement stopped: {exc}")
            return

        async def job(cancel: asyncio.Event) -> Any:
            try:  # results selected for export as pending (the core's one selection rule)
                return await core.enhance_images(self.dataset, relpaths, backend, params, cache=self.cache,
                                                 on_event=sink, cancel=cancel)
            finally:
                for note in backend.warnings:
                    sink.warn("server", note)
                await backend.aclose()

        try:
            report = await self.run_cancellable(sink, job)
        except BackendError as exc:
            sink.fail(exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user, the app keeps running
            sink.fail(f"enhancement stopped: {exc}")
            return
        sink.finish(JobStatus.CANCELLED if report.cancelled else JobStatus.DONE)
        changed = [o.name for o in report.outcomes.values() if o.entry is not None]
        self.post_message(RowsChanged(changed, show_latest=True))


#: The fields of the reprocess form, in order: (EnhanceParams field, label, type).
PARAM_FIELDS = (
    ("scale_factor", "scale factor", float), ("upscaler", "upscaler", str),
    ("denoising_strength", "denoising strength", float), ("steps", "steps", int),
    ("cfg_scale", "CFG scale", float), ("sampler_name", "sampler", str),
    ("prompt", "prompt", str), ("negative_prompt", "negative prompt", str),
)


def params_form(params: EnhanceParams, relpath: str, origin: str = "the last values used") -> FormScreen:
    """The reprocess form, pre-filled with ``params`` (``origin`` says from where);
    returns EnhanceParams."""
    values = params.to_dict()
    fields = [Field(name, label, "auto" if values[name] is None else str(values[name]))
              for name, label, _ in PARAM_FIELDS]

    def validate(v: dict[str, str]) -> EnhanceParams:
        changes: dict[str, Any] = {}
        for name, label, kind in PARAM_FIELDS:
            raw = v[name].strip()
            if name == "scale_factor" and raw.lower() in ("", "auto"):
                changes[name] = None  # to the training resolution (enhance/sizing.py)
                continue
            try:
                changes[name] = kind(raw) if kind is not str else v[name]
            except ValueError:
                raise ValueError(f"{label}: {raw!r} is not a {'number' if kind is float else 'whole number'}") from None
        if changes["steps"] < 1:
            raise ValueError("steps: at least 1")
        return params.with_(**changes, target_short_side=None)

    return FormScreen(f"Reprocess {relpath}", fields, validate, "Reprocess",
                      note=f"Pre-filled with {origin}. Enter moves down; ctrl+s runs.",
                      id="params-form")

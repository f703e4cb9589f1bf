"""The info panel: what is known of the current image and of the variant shown."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...findings import Severity
from ...statuses import ReviewStatus
from ..model import Row

PARAM_LABELS = (("scale_factor", "scale"), ("scale", "scale"), ("upscaler", "upscaler"),
                ("denoising_strength", "denoise"), ("steps", "steps"), ("cfg_scale", "CFG"),
                ("sampler_name", "sampler"))


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def describe(row: Row | None, showing: str | None = None, extra: Text | None = None) -> Text:
    """The info text of ``row``; ``showing`` is the cache key of the variant shown (None = original);
    ``extra``: a line shown second (the crop overlay's bucket, scale and crop)."""
    if row is None:
        return Text("no image", style="dim")
    rec = row.record
    t = Text()
    size = rec.display_size
    t.append(f"{size[0]}x{size[1]}" if size else "size ?", style="bold")
    t.append(f" {rec.format or '?'} {rec.mode or ''} {_human_bytes(rec.size)}")
    if rec.is_grayscale:
        t.append(" grayscale", style="yellow")
    if rec.sharpness is not None:
        t.append(f" sharp {rec.sharpness:.0f}")
    t.append("\n")
    if extra is not None:
        t.append_text(extra)
        t.append("\n")
    status_style = {ReviewStatus.ACCEPTED: "green", ReviewStatus.REJECTED: "red"}.get(row.status, "")
    t.append(row.status, style=status_style)
    if row.status == ReviewStatus.ACCEPTED:
        t.append(" (enhanced exported)" if row.selected_variant else " (original exported)")
    t.append(f"  digest {rec.digest[:12] if rec.digest else '?'}", style="dim")
    t.append("\n")
    flags = row.flags()
    for f in flags + [f for f in row.all_findings() if f not in flags]:
        style = {Severity.ERROR: "red", Severity.WARNING: "yellow"}.get(f.severity, "cyan")
        t.append(f"! {f.code}: {f.message}\n", style=style)
    if row.variants:
        v = row.variant(showing) or row.variant(row.selected_variant) or row.variants[0]
        label = "shown" if v.cache_key == showing else "latest"
        t.append(f"{len(row.variants)} variant(s), {label}: {v.kind} {v.width}x{v.height} "
                 f"({v.backend.split('/')[0]})\n", style="green")
        parts = [f"{lbl} {v.params[k]}" for k, lbl in PARAM_LABELS if k in v.params]
        if parts:
            t.append(", ".join(parts) + "\n", style="dim")
    t.rstrip()
    return t


class InfoPanel(Static):
    """Dimensions, format, digest, grayscale, sharpness, findings and enhancement parameters."""

    DEFAULT_CSS = """
    InfoPanel { height: auto; max-height: 7; border: round $primary-darken-2;
                border-title-align: left; padding: 0 1; }
    """

    #: ``annotate(row, showing)``: an extra line (None: none); set while the crop overlay is on.
    annotate = None

    def on_mount(self) -> None:
        self.border_title = "Info"

    def show(self, row: Row | None, showing: str | None = None) -> None:
        """Describe ``row``."""
        self.border_title = row.relpath if row is not None else "Info"
        extra = self.annotate(row, showing) if self.annotate is not None and row is not None else None
        self.update(describe(row, showing, extra))

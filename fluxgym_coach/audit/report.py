"""A self-contained HTML report of a dataset audit, for people who would rather look than read a table.

:func:`write_report` audits the dataset (:func:`fluxgym_coach.audit.rules.audit_dataset`,
so a warm run decodes only the thumbnails) and writes one HTML file that needs
nothing else: thumbnails are JPEG data URLs made with
:func:`fluxgym_coach.imaging.thumbnail`, styles are inline, charts are inline
SVG, there is no script and no external resource, so it opens from a
headless box's scp'd copy as well as from a browser on the same machine.

Sections (each an element with the id in brackets): the export readiness
(``readiness``), the findings per image, flagged images first
(``findings``), the duplicate groups side by side with the suggested keeper
(``duplicates``), and the caption statistics (``captions``): a histogram of
caption lengths in words and the most frequent tags.
"""

from __future__ import annotations

import base64
import html
import os
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import imaging
from .rules import ERROR, INFO, WARNING, AuditReport, Thresholds, audit_dataset
from ..dataset import Dataset
from ..events import EventSink, ItemDone, ItemFailed, JobFinished, JobStarted, null_sink
from ..fsutil import atomic_write_text
from ..statuses import JobStatus, ReviewStatus

#: Long side of the embedded thumbnails, px.
THUMB_SIDE = 160
#: Fluxgym's upload limit (``MAX_IMAGES`` in its app.py; reference/fluxgym.md §5).
FLUXGYM_MAX_IMAGES = 150
#: Fluxgym refuses fewer than this many images.
FLUXGYM_MIN_IMAGES = 2


@dataclass(slots=True)
class Check:
    """One line of the export readiness: ``name``, ``ok``, a ``detail`` sentence and
    ``blocking`` (True when a failure stops a good export, False for advice)."""

    name: str
    ok: bool
    detail: str
    blocking: bool = True


@dataclass(slots=True)
class CaptionStats:
    """Caption statistics over the images kept for export: ``captioned`` count,
    ``lengths`` (words per caption), ``histogram`` ``[(low, high, count)]`` of
    lengths, ``tags`` the most frequent tags ``[(tag, count)]`` and ``unique_tags``."""

    captioned: int = 0
    missing: int = 0
    lengths: list[int] = field(default_factory=list)
    histogram: list[tuple[int, int, int]] = field(default_factory=list)
    tags: list[tuple[str, int]] = field(default_factory=list)
    unique_tags: int = 0


def readiness(report: AuditReport, rejected: set[str] | None = None) -> list[Check]:
    """Export readiness of the images not rejected, as checks (see :class:`Check`)."""
    rejected = rejected or set()
    kept = {rel: a for rel, a in report.images.items() if rel not in rejected}
    n = len(kept)

    def having(code_or_prefix: str, severity: str | None = None) -> list[str]:
        return [rel for rel, a in kept.items()
                if any((f.code == code_or_prefix or f.code.startswith(code_or_prefix + "-"))
                       and (severity is None or f.severity == severity) for f in a.findings)]

    unreadable = having("unreadable")
    caption_errors = [rel for rel, a in kept.items()
                      if any(f.category == "caption" and f.severity == ERROR for f in a.findings)]
    uncaptioned = having("no_caption") + having("caption-missing") + having("caption-empty")
    too_small = having("low_resolution", ERROR)
    upscale = having("low_resolution", WARNING)
    dup_extra = [rel for rel, a in kept.items()
                 if any(f.category == "duplicate" and f.severity == WARNING for f in a.findings)]
    bw = having("grayscale")
    errors = [rel for rel, a in kept.items() if a.worst == ERROR]

    def names(rels: list[str]) -> str:
        rels = sorted(set(rels))
        return ", ".join(rels[:5]) + (f" and {len(rels) - 5} more" if len(rels) > 5 else "")

    return [
        Check("images", n >= FLUXGYM_MIN_IMAGES,
              f"{n} images kept ({len(rejected & set(report.images))} rejected); Fluxgym needs at "
              f"least {FLUXGYM_MIN_IMAGES} and its upload takes at most {FLUXGYM_MAX_IMAGES} "
              "(direct export has no cap)"),
        Check("readable", not unreadable,
              "every image decodes" if not unreadable else f"unreadable: {names(unreadable)}"),
        Check("captions", not uncaptioned and not caption_errors,
              "every image has a caption that passes the caption rules" if not (uncaptioned or caption_errors)
              else f"missing or failing captions: {names(uncaptioned + caption_errors)}"),
        Check("resolution", not too_small,
              f"no image needs more than x{report.thresholds.max_upscale:g} upscaling"
              if not too_small else f"too small even for a 4x upscaler: {names(too_small)}"),
        Check("upscaling", not upscale,
              "no image below the resolution" if not upscale
              else f"{len(upscale)} images below resolution {report.resolution}: prepare upscales them",
              blocking=False),
        Check("duplicates", not dup_extra,
              "no duplicates left" if not dup_extra
              else f"{len(dup_extra)} duplicates besides their keepers: reject them ({names(dup_extra)})",
              blocking=False),
        Check("colour", not bw, "all in colour" if not bw
              else f"{len(bw)} black-and-white images: colorize them unless that is the style",
              blocking=False),
        Check("no errors", not errors, "no error finding" if not errors
              else f"{len(errors)} images with an error finding", blocking=True),
    ]


def caption_stats(dataset: Dataset, rejected: set[str] | None = None, top: int = 30,
                  bins: int = 12) -> CaptionStats:
    """Caption lengths (words) and tag frequencies of the images not rejected, from the store."""
    try:
        from ..captions.text import split_tags, tag_key, words
    except ImportError:  # the caption module is optional for the report
        def split_tags(text: str | None) -> list[str]:  # type: ignore[misc]
            return [t.strip() for t in (text or "").split(",") if t.strip()]

        def tag_key(tag: str) -> str:  # type: ignore[misc]
            return " ".join(tag.lower().split())

        def words(text: str) -> list[str]:  # type: ignore[misc]
            return text.split()
    rejected = rejected or set()
    stats = CaptionStats()
    tags: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for rec in dataset.images():
        if rec.relpath in rejected or rec.error:
            continue
        text = (rec.caption or "").strip()
        if not text:
            stats.missing += 1
            continue
        stats.captioned += 1
        stats.lengths.append(len(words(text)))
        for t in split_tags(text):
            k = tag_key(t)
            tags[k] += 1
            shown.setdefault(k, t)
    stats.unique_tags = len(tags)
    stats.tags = [(shown[k], c) for k, c in tags.most_common(top)]
    if stats.lengths:
        lo, hi = min(stats.lengths), max(stats.lengths)
        width = max(1, -(-(hi - lo + 1) // bins))
        edges = list(range(lo, hi + 1, width))
        stats.histogram = [(e, e + width - 1, sum(1 for x in stats.lengths if e <= x < e + width))
                           for e in edges]
    return stats


def _thumb(path: Path) -> str | None:
    try:
        im = imaging.thumbnail(path, THUMB_SIDE)
        data = imaging.encode(im, "JPEG", quality=80)
    except (imaging.ImageReadError, OSError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def thumbnails(dataset: Dataset, relpaths: list[str], on_event: EventSink = null_sink,
               workers: int | None = None) -> dict[str, str | None]:
    """``{relpath: JPEG data URL or None}`` made in a thread pool, one event per image."""
    job = f"report-{uuid.uuid4().hex[:8]}"
    on_event(JobStarted(job, "report", len(relpaths)))
    out: dict[str, str | None] = {}
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 2),
                            thread_name_prefix="report") as pool:
        for rel, url in zip(relpaths, pool.map(_thumb, [dataset.image_path(r) for r in relpaths])):
            out[rel] = url
            on_event(ItemDone(job, rel) if url else ItemFailed(job, rel, "no thumbnail: unreadable"))
    on_event(JobFinished(job, "report", JobStatus.DONE, sum(1 for v in out.values() if v),
                         sum(1 for v in out.values() if not v)))
    return out


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #e4e4e4;vertical-align:top;text-align:left}
.ok{color:#176a2c}.fail{color:#b00020;font-weight:bold}.advice{color:#8a5a00}
.error{color:#b00020}.warning{color:#8a5a00}.info{color:#666}
.sev{font-weight:bold;text-transform:uppercase;font-size:.8em}
img{border:1px solid #ccc;background:#fff}
.group{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0;padding:8px;border:1px solid #ddd;background:#fff}
.member{text-align:center;font-size:.85em;max-width:170px;word-break:break-all}.keeper img{border:3px solid #176a2c}
.bar{fill:#4a78c2}.small{font-size:.85em;color:#666}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _img(url: str | None, alt: str) -> str:
    if not url:
        return '<span class="small">(no preview)</span>'
    return f'<img src="{url}" alt="{_e(alt)}" loading="lazy">'


def _histogram_svg(hist: list[tuple[int, int, int]]) -> str:
    if not hist:
        return '<p class="small">no captions yet</p>'
    w, h, bar = 28, 120, 24
    peak = max(c for _, _, c in hist) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{len(hist) * w + 10}" height="{h + 40}" '
             f'role="img" aria-label="caption length histogram">']
    for i, (lo, hi, c) in enumerate(hist):
        bh = round(h * c / peak)
        x = 5 + i * w
        parts.append(f'<rect class="bar" x="{x}" y="{h - bh + 5}" width="{bar}" height="{bh}">'
                     f'<title>{lo}-{hi} words: {c}</title></rect>')
        parts.append(f'<text x="{x + bar / 2}" y="{h + 20}" font-size="10" text-anchor="middle">{lo}</text>')
        if c:
            parts.append(f'<text x="{x + bar / 2}" y="{h - bh}" font-size="10" text-anchor="middle">{c}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(dataset: Dataset, report: AuditReport, thumbs: dict[str, str | None],
                rejected: set[str] | None = None, title: str | None = None) -> str:
    """The report page as a string (see the module docstring for its sections)."""
    rejected = rejected or set()
    checks = readiness(report, rejected)
    cstats = caption_stats(dataset, rejected)
    counts = report.counts()
    blocking_failed = [c for c in checks if c.blocking and not c.ok]
    title = title or f"fluxgym-coach report: {dataset.root.name}"
    h: list[str] = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
                    '<meta name="viewport" content="width=device-width, initial-scale=1">',
                    f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
                    f"<h1>{_e(title)}</h1>",
                    f'<p class="small">{_e(dataset.root)} &middot; resolution {report.resolution} &middot; '
                    f'{len(report.images)} images &middot; {counts[ERROR]} with errors, {counts[WARNING]} '
                    f'with warnings &middot; generated {_e(time.strftime("%Y-%m-%d %H:%M:%S"))}</p>']
    # readiness
    verdict = "ready to export" if not blocking_failed else "not ready to export"
    h.append(f'<section id="readiness"><h2>Export readiness: '
             f'<span class="{"ok" if not blocking_failed else "fail"}">{verdict}</span></h2><table>')
    for c in checks:
        cls = "ok" if c.ok else ("fail" if c.blocking else "advice")
        mark = "&#10003;" if c.ok else ("&#10007;" if c.blocking else "!")
        h.append(f'<tr><td class="{cls}">{mark}</td><td>{_e(c.name)}</td><td>{_e(c.detail)}</td></tr>')
    h.append("</table></section>")
    # findings
    h.append('<section id="findings"><h2>Findings</h2>')
    by_code = report.by_code()
    if by_code:
        h.append('<p class="small">' + " &middot; ".join(f"{_e(k)}: {len(v)}" for k, v in by_code.items())
                 + "</p>")
    h.append("<table><tr><th>image</th><th>file</th><th>findings</th></tr>")
    order = sorted(report.images.values(),
                   key=lambda a: ({ERROR: 0, WARNING: 1, INFO: 2, None: 3}[a.worst], a.relpath))
    for a in order:
        bucket = (f"bucket {a.bucket.size[0]}x{a.bucket.size[1]}, x{a.bucket.scale:.2f}, "
                  f"crop {a.bucket.crop:.0%}" if a.bucket else "")
        status = " (rejected)" if a.relpath in rejected else ""
        items = "".join(
            f'<li><span class="sev {f.severity}">{f.severity}</span> <b>{_e(f.code)}</b>: {_e(f.message)}'
            + (f' <span class="small">[{_e(f.value)} vs {_e(f.threshold)}]</span>'
               if f.threshold is not None and f.category != "caption" else "")
            + (f'<br><span class="small">fix: {_e(f.fix)}</span>' if f.fix else "") + "</li>"
            for f in a.findings) or '<li class="ok">no finding</li>'
        h.append(f'<tr id="img-{_e(a.relpath)}"><td>{_img(thumbs.get(a.relpath), a.relpath)}</td>'
                 f'<td><b>{_e(a.relpath)}</b>{_e(status)}<br><span class="small">{_e(a.category or "")}'
                 f"<br>{_e(bucket)}</span></td><td><ul>{items}</ul></td></tr>")
    h.append("</table></section>")
    # duplicates
    h.append(f'<section id="duplicates"><h2>Duplicate groups ({len(report.groups)})</h2>')
    if not report.groups:
        h.append('<p class="ok">no exact or near duplicates</p>')
    for g in report.groups:
        label = ("identical files" if g.kind == "exact"
                 else f"near duplicates (pHash distance up to {g.max_distance} bits)")
        h.append(f'<div class="group" data-kind="{g.kind}"><div class="small">{_e(label)}</div>')
        for rel in g.members:
            keeper = rel == g.keeper
            h.append(f'<div class="member{" keeper" if keeper else ""}">{_img(thumbs.get(rel), rel)}'
                     f'<br>{_e(rel)}<br><b>{"keep" if keeper else "reject?"}</b></div>')
        h.append("</div>")
    h.append("</section>")
    # captions
    h.append(f'<section id="captions"><h2>Captions</h2><p>{cstats.captioned} captioned, '
             f'{cstats.missing} without caption, {cstats.unique_tags} distinct tags.</p>'
             f"<h3>Length (words)</h3>{_histogram_svg(cstats.histogram)}"
             "<h3>Most frequent tags</h3><table><tr><th>tag</th><th>images</th></tr>")
    for tag, c in cstats.tags:
        h.append(f"<tr><td>{_e(tag)}</td><td>{c}</td></tr>")
    h.append("</table></section></body></html>")
    return "\n".join(h)


@dataclass(slots=True)
class ReportResult:
    """What :func:`write_report` did: the ``path`` written, the ``audit``, the
    ``checks`` and whether the dataset is ``ready`` (no blocking check failed)."""

    path: Path
    audit: AuditReport
    checks: list[Check]
    ready: bool
    thumbnails: int


def write_report(dataset: Dataset, out: str | Path, *, resolution: int = 1024,
                 trigger: str | None = None, thresholds: Thresholds | None = None,
                 max_thumbnails: int = 2000, on_event: EventSink = null_sink,
                 workers: int | None = None) -> ReportResult:
    """Audit ``dataset`` and write the HTML report to ``out`` (atomically).

    Thumbnails are embedded for up to ``max_thumbnails`` images, flagged and
    duplicate images first (a 160-px JPEG is 4-8 KB). Images rejected in
    review are shown as such and left out of the readiness and caption
    statistics. Raises OSError when ``out`` cannot be written.
    """
    report = audit_dataset(dataset, resolution=resolution, thresholds=thresholds, trigger=trigger,
                           on_event=on_event, workers=workers)
    rejected = {rel for rel, (_, status) in dataset.store.selection().items() if status == ReviewStatus.REJECTED}
    in_groups = {rel for g in report.groups for rel in g.members}
    ranked = sorted(report.images, key=lambda rel: (rel not in in_groups,
                                                    report.images[rel].worst not in (ERROR, WARNING), rel))
    wanted = [rel for rel in ranked if report.images[rel].bucket is not None][:max_thumbnails]
    thumbs = thumbnails(dataset, wanted, on_event=on_event, workers=workers)
    page = render_html(dataset, report, thumbs, rejected)
    path = Path(out)
    atomic_write_text(path, page)
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)  # a report is meant to be shared, unlike the private temp file
    checks = readiness(report, rejected)
    return ReportResult(path, report, checks, all(c.ok for c in checks if c.blocking),
                        sum(1 for v in thumbs.values() if v))

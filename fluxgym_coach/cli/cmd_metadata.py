"""``fluxgym-coach metadata DATASET``: technical metadata (EXIF, ICC, DPI, bit depth,
animation) of every image, extracted once and kept in the store."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from .. import metadata as md
from .cmd_caption import DatasetArg, open_dataset
from .common import esc, EXIT_FAILED, EXIT_OK, EXIT_USAGE, err, fail, out, print_json
from .options import Json


def metadata_cmd(
    dataset: DatasetArg,
    image: Annotated[Optional[str], typer.Option("--image", "-i", help="Show one image in full.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Read every file again.")] = False,
    json_out: Json = False,
) -> None:
    """Show each image's camera, exposure, colour profile, DPI...

    Extracts what is new or changed: camera, lens, date, exposure, colour
    profile, DPI, bit depth, animation. Exit 1 when a file could not be read.

    Example: fluxgym-coach metadata ./photos --image chelsea.png
    """
    with open_dataset(dataset) as ds:
        report = md.update_metadata(ds, force=force)
        data = md.all_metadata(ds.store)
    if image is not None:
        if image not in data:
            raise fail(f"{image}: no metadata (not in the dataset, or unreadable)", EXIT_USAGE)
        data = {image: data[image]}
    if json_out:
        print_json({"images": data, "errors": report.errors})
    elif image is not None:
        for line in md.summary_lines(data[image]):
            out.print(esc(line))
    else:
        table = Table("image", "size", "camera", "exposure", "profile", "dpi", "bits", "frames")
        for rel, m in data.items():
            cam = " ".join(x for x in ((m.get("camera") or {}).get("make"),
                                       (m.get("camera") or {}).get("model")) if x)
            exp = m.get("exposure") or {}
            exposure = " ".join(x for x in (
                f"{exp['exposure_time']}s" if "exposure_time" in exp else "",
                f"f/{exp['f_number']:g}" if "f_number" in exp else "",
                f"ISO{exp['iso']}" if "iso" in exp else "") if x)
            icc = (m.get("icc_profile") or {}).get("description") or ("yes" if m.get("icc_profile") else "")
            dpi = f"{m['dpi'][0]:g}" if m.get("dpi") else ""
            table.add_row(esc(rel), f"{m['width']}x{m['height']}", esc(cam), esc(exposure), esc(icc), dpi,
                          str(m.get("bit_depth") or ""), str(m.get("n_frames")))
        out.print(table)
    for rel, reason in report.errors.items():
        err.print(f"[red]unreadable[/] {esc(rel)}: {esc(reason)}")
    raise typer.Exit(EXIT_FAILED if report.errors else EXIT_OK)


def register(app: typer.Typer) -> None:
    """Add the ``metadata`` command."""
    app.command("metadata")(metadata_cmd)

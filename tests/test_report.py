"""The HTML report: self-contained structure (html.parser), sections, embedded thumbnails,
duplicate groups, caption statistics, readiness, escaping, the command; a headless
browser renders it when one is installed."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.audit.report import caption_stats, readiness, write_report

from .fixtures_audit import SIDE, textured

runner = CliRunner()


class Collector(HTMLParser):
    """Every start tag with its attributes, the text, and whether tags balance."""

    VOID = {"meta", "img", "br", "input", "link", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.text: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with {self.stack[-3:]} open")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag):
        return [a for t, a in self.tags if t == tag]


def parse(path: Path) -> Collector:
    c = Collector()
    c.feed(path.read_text(encoding="utf-8"))
    c.close()
    return c


def test_report_structure(audit_images, tmp_path):
    folder, _ = audit_images
    (folder / "sharp.txt").write_text("ohwx, <script>alert(1)</script> a mosaic, red tiles",
                                      encoding="utf-8")
    out = tmp_path / "r" / "report.html"
    with Dataset(folder) as ds:
        result = write_report(ds, out, resolution=SIDE, trigger="ohwx")
    assert result.path == out and out.stat().st_mode & 0o044  # readable by others
    doc = parse(out)
    assert doc.errors == [] and doc.stack == []
    ids = {a.get("id") for _, a in doc.tags}
    assert {"readiness", "findings", "duplicates", "captions"} <= ids
    # self-contained: every image is an embedded JPEG that decodes; nothing is fetched
    imgs = doc.all("img")
    assert len(imgs) == result.thumbnails + 4  # group members are shown a second time
    for a in imgs:
        assert a["src"].startswith("data:image/jpeg;base64,")
        im = Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1])))
        assert max(im.size) <= 160
    assert not any(t in ("script", "link", "iframe") for t, _ in doc.tags)
    for _, a in doc.tags:
        for key in ("src", "href"):
            assert not (a.get(key) or "").startswith(("http:", "https:", "//"))
    # duplicate groups side by side, keeper marked
    groups = [a for t, a in doc.tags if t == "div" and a.get("class") == "group"]
    assert sorted(g["data-kind"] for g in groups) == ["exact", "near"]
    assert len([a for t, a in doc.tags if t == "div" and a.get("class") == "member keeper"]) == 2
    # findings rows for every image, and the caption statistics
    rows = {a["id"] for t, a in doc.tags if t == "tr" and (a.get("id") or "").startswith("img-")}
    assert rows == {f"img-{rel}" for rel in result.audit.images}
    assert doc.all("svg") and doc.all("rect")
    text = "".join(doc.text)
    assert "<script>alert(1)</script>" in text  # shown as text, escaped in the markup
    assert "not ready to export" in text and not result.ready
    assert "ohwx" in text


def test_readiness_and_caption_stats(audit_images):
    folder, _ = audit_images
    with Dataset(folder) as ds:
        report = write_report(ds, folder.parent / "r.html", resolution=SIDE, trigger="ohwx").audit
        checks = {c.name: c for c in readiness(report)}
        assert not checks["readable"].ok and "corrupt.png" in checks["readable"].detail
        assert not checks["resolution"].ok and "tiny.png" in checks["resolution"].detail
        assert not checks["duplicates"].ok and not checks["duplicates"].blocking
        assert checks["captions"].ok
        blocking_errors = {rel for rel, a in report.images.items() if a.worst == "error"}
        after = {c.name: c for c in readiness(report, rejected=blocking_errors)}
        assert after["readable"].ok and after["resolution"].ok and after["no errors"].ok
        stats = caption_stats(ds)
    assert stats.captioned == len(report.images) - 1  # the corrupt file is not counted
    assert stats.tags[0] == ("ohwx", stats.captioned)
    assert sum(c for _, _, c in stats.histogram) == stats.captioned


def test_report_command(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    for i in range(3):
        textured((512, 512), i).save(root / f"p{i}.png")
        (root / f"p{i}.txt").write_text(f"ohwx, a mosaic of coloured tiles number {i}", encoding="utf-8")
    out = tmp_path / "report.html"
    res = runner.invoke(app, ["report", str(root), "--out", str(out), "--resolution", "512",
                              "--trigger", "ohwx", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["ready"] is True and data["thumbnails"] == 3 and Path(data["report"]) == out.resolve()
    (root / "broken.png").write_bytes(b"nope")
    res = runner.invoke(app, ["report", str(root), "--out", str(out), "--resolution", "512"])
    assert res.exit_code == 1 and "not ready" in res.stdout
    assert runner.invoke(app, ["report", str(tmp_path / "missing")]).exit_code == 2


def _browser() -> str | None:
    """A headless Chromium: Debian's chromium-headless-shell, or a full chromium."""
    for name in ("chromium-headless-shell", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium installed")
def test_report_renders_in_headless_browser(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    textured((512, 512), 1).save(root / "a.png")
    out = tmp_path / "report.html"
    with Dataset(root) as ds:
        write_report(ds, out, resolution=512)
    dom = subprocess.run([_browser(), "--headless", "--disable-gpu", "--no-sandbox", "--dump-dom",
                          out.as_uri()], capture_output=True, text=True, timeout=60).stdout
    assert 'id="readiness"' in dom and 'id="captions"' in dom and "data:image/jpeg" in dom


def test_report_on_real_images(real_dataset, tmp_path):
    out = tmp_path / "real.html"
    with Dataset(real_dataset) as ds:
        result = write_report(ds, out, resolution=1024)
    doc = parse(out)
    assert doc.errors == []
    groups = [a for t, a in doc.tags if t == "div" and a.get("class") == "group"]
    assert [g["data-kind"] for g in groups] == ["near"]
    alts = [a.get("alt") for a in doc.all("img")]
    assert alts.count("motorcycle_left.png") == 2 and alts.count("motorcycle_right.png") == 2
    assert result.thumbnails == 13

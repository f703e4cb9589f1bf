"""Caption sidecars in UTF-16/32 are read by their BOM (UTF-16 also without one); NUL,
control bytes and binary files are refused with the file and the fix, and never exported."""

import codecs
import json

import pytest
from typer.testing import CliRunner

from fluxgym_coach.captions.encoding import REFUSED, decode_caption
from fluxgym_coach.captions.text import lint
from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset

TEXT = "a photo of ohwx, café crème"

runner = CliRunner()


@pytest.mark.parametrize("raw, encoding", [
    (TEXT.encode("utf-8"), "utf-8"),
    (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
    (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16"),
    (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
    (TEXT.encode("utf-16"), "utf-16"),  # Python's own: BOM + native order
    (codecs.BOM_UTF32_LE + TEXT.encode("utf-32-le"), "utf-32"),
    (codecs.BOM_UTF32_BE + TEXT.encode("utf-32-be"), "utf-32"),
    (TEXT.encode("utf-16-le"), "utf-16-le"),  # Notepad "Unicode" without BOM
    (TEXT.encode("utf-16-be"), "utf-16-be"),
    (TEXT.encode("cp1252"), "cp1252"),
])
def test_encodings_are_detected(raw, encoding):
    cap = decode_caption(raw, "x.txt")
    assert (cap.text, cap.encoding, cap.error) == (TEXT, encoding, None)
    assert (cap.warning is None) == (encoding in ("utf-8", "utf-8-sig"))


@pytest.mark.parametrize("raw, what", [
    (b"a cat\x00 on a rug", "NUL byte (U+0000) at character 6"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "NUL byte"),
    (b"a cat \x07 bell", "control character U+0007 at character 7"),
    (b"a cat \x81 there", "0x81 at byte 7"),  # not cp1252 either
    (codecs.BOM_UTF8 + b"caf\xe9", "0xE9 at byte 7"),  # BOM then invalid UTF-8
    ("a cat\x00x".encode("utf-16"), "U+0000"),
])
def test_nul_control_and_binary_are_refused_naming_the_file_and_fix(raw, what):
    cap = decode_caption(raw, "/data/cat.txt")
    assert cap.encoding == REFUSED and cap.text == ""
    assert cap.error.startswith("/data/cat.txt: caption refused") and what in cap.error
    assert "save it as UTF-8" in cap.error and "never exported" in cap.error
    assert cap.damaged  # the content survives for the history
    assert [f.code for f in lint(cap.text, encoding=cap.encoding)] == ["refused"]


def _exported_captions(out):
    return {p.stem: p.read_bytes() for p in (out / "datasets").rglob("*.txt")}


def test_export_writes_utf16_as_utf8_and_never_a_refused_caption(example_dataset, tmp_path):
    (example_dataset / "chelsea.txt").write_bytes(codecs.BOM_UTF16_LE + "a tabby cat".encode("utf-16-le"))
    (example_dataset / "coffee.txt").write_bytes(b"a cup\x00\x00 of coffee")
    (example_dataset / "horse.txt").write_bytes("a horse".encode("utf-16-le"))
    r = runner.invoke(app, ["scan", str(example_dataset)])
    assert "coffee.txt: caption refused" in r.output
    out = tmp_path / "fg"
    r = runner.invoke(app, ["export", str(example_dataset), "-o", str(out), "-t", "ohwx", "--json"])
    assert r.exit_code == 1, r.output
    caps = _exported_captions(out)
    assert caps["chelsea"] == b"ohwx, a tabby cat" and caps["horse"] == b"ohwx, a horse"
    assert "coffee" not in caps and not list((out / "datasets").rglob("coffee.*"))
    assert not any(b"\0" in c for c in caps.values())
    assert "coffee.txt: caption refused" in r.output


def test_saving_over_a_refused_caption_keeps_it_in_the_history(example_dataset):
    (example_dataset / "coffee.txt").write_bytes(b"a cup\x00 of coffee")
    with Dataset(example_dataset) as ds:
        report = ds.scan()
        assert "caption refused" in report.warnings["coffee.png"]
        assert ds.store.image("coffee.png").caption_encoding == REFUSED
        assert ds.write_caption("coffee.png", "a cup of coffee")
        (row,) = ds.store.caption_history("coffee.png", include_undone=False)
        assert row["old_text"] == "a cup\x00 of coffee"
    assert (example_dataset / "coffee.txt").read_bytes() == b"a cup of coffee"


def test_captions_lint_reports_the_refused_file(example_dataset):
    (example_dataset / "coffee.txt").write_bytes(b"\x00\x01\x02binary")
    runner.invoke(app, ["scan", str(example_dataset)])
    r = runner.invoke(app, ["captions", "lint", str(example_dataset), "--json"])
    data = json.loads(r.stdout)
    assert [f["code"] for f in data["findings"]["coffee.png"]] == ["refused"]
    assert r.exit_code == 1

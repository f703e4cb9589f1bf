"""dataset.py: incremental scan, sidecars, caption history and undo."""

from __future__ import annotations

import os

import pytest

from fluxgym_coach import dataset as dataset_mod
from fluxgym_coach.dataset import Dataset, read_sidecar
from tests.helpers_images import photo_like, save


def _make(root, names):
    for i, n in enumerate(names):
        save(photo_like((64 + i, 48), seed=i), root / n)


def test_scan_accepts_every_format_in_any_case_and_skips_hidden(tmp_path):
    root = tmp_path / "ds"
    im = photo_like((80, 60), seed=1)
    save(im, root / "a.PNG")
    save(im.rotate(90, expand=True), root / "b.JpEg", quality=90)
    save(im, root / "c.webp")
    save(im, root / "d.bmp")
    save(im, root / "sub" / "e.TIFF")
    frames = [photo_like((40, 30), seed=s).convert("P") for s in (2, 3)]
    frames[0].save(root / "f.gif", save_all=True, append_images=frames[1:])
    save(im, root / ".hidden" / "x.png")
    save(im, root / ".fluxgym-coach" / "y.png")
    (root / "notes.md").write_text("not an image")
    with Dataset(root) as ds:
        report = ds.scan()
        recs = {r.relpath: r for r in ds.images()}
    assert sorted(recs) == ["a.PNG", "b.JpEg", "c.webp", "d.bmp", "f.gif", "sub/e.TIFF"]
    assert not report.errors
    assert recs["f.gif"].n_frames == 2 and recs["f.gif"].format == "GIF"
    assert recs["b.JpEg"].format == "JPEG" and (recs["b.JpEg"].width, recs["b.JpEg"].height) == (60, 80)
    for r in recs.values():
        assert len(r.digest) == 32 and len(r.phash) == 16 and r.sharpness is not None


def test_rescan_of_unchanged_folder_reads_nothing(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    _make(root, [f"{i}.png" for i in range(5)])
    with Dataset(root) as ds:
        assert len(ds.scan().added) == 5
        calls = []
        real = dataset_mod._measure_entry
        monkeypatch.setattr(dataset_mod, "_measure_entry", lambda e: calls.append(e) or real(e))
        opened = []
        real_open = open

        def spy_open(file, *a, **kw):
            opened.append(str(file))
            return real_open(file, *a, **kw)

        monkeypatch.setattr("builtins.open", spy_open)
        report = ds.scan()
        monkeypatch.setattr("builtins.open", real_open)
    assert report.unchanged == 5 and not report.added and not report.updated
    assert calls == []
    assert not [p for p in opened if p.endswith(".png")]


def test_rescan_rereads_changed_and_forgets_deleted(tmp_path):
    root = tmp_path / "ds"
    _make(root, ["a.png", "b.png", "c.png"])
    with Dataset(root) as ds:
        ds.scan()
        old = ds.store.image("a.png").digest
        save(photo_like((100, 100), seed=42), root / "a.png")
        os.utime(root / "a.png", ns=(1, 1))
        (root / "b.png").unlink()
        (root / "c.txt").write_text("a new caption")
        report = ds.scan()
        assert report.updated == ["a.png"] and report.removed == ["b.png"]
        assert report.captions_updated == ["c.png"]
        assert ds.store.image("a.png").digest != old
        assert ds.store.image("c.png").caption == "a new caption"


def test_sidecar_encodings(tmp_path):
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfcaf\xc3\xa9")
    (tmp_path / "win.txt").write_bytes("café crème".encode("cp1252"))
    bom = read_sidecar(tmp_path / "bom.txt")
    win = read_sidecar(tmp_path / "win.txt")
    assert (bom.text, bom.encoding, bom.warning) == ("café", "utf-8-sig", None)
    assert win.text == "café crème" and win.encoding == "cp1252" and "not UTF-8" in win.warning
    assert read_sidecar(tmp_path / "none.txt") is None


def test_scan_reports_non_utf8_caption_as_warning(tmp_path):
    root = tmp_path / "ds"
    _make(root, ["a.png"])
    (root / "a.txt").write_bytes("crème brûlée".encode("cp1252"))
    with Dataset(root) as ds:
        report = ds.scan()
        assert "a.png" in report.warnings
        assert ds.store.image("a.png").caption == "crème brûlée"


def test_write_caption_is_one_line_utf8_with_history_and_undo(tmp_path):
    root = tmp_path / "ds"
    _make(root, ["a.png"])
    (root / "a.txt").write_bytes("ancien texte".encode("cp1252"))
    with Dataset(root) as ds:
        ds.scan()
        assert ds.write_caption("a.png", "ohwx, a photo\nof a cat  ", source="test")
        raw = (root / "a.txt").read_bytes()
        assert raw == b"ohwx, a photo of a cat"
        assert ds.write_caption("a.png", "ohwx, a photo of a cat") is False
        ds.write_caption("a.png", "second")
        assert ds.store.image("a.png").caption == "second"
        assert ds.undo_caption("a.png") == "ohwx, a photo of a cat"
        assert (root / "a.txt").read_text() == "ohwx, a photo of a cat"
        assert ds.undo_caption("a.png") == "ancien texte"
        assert (root / "a.txt").read_bytes() == "ancien texte".encode("utf-8")
        history = ds.store.caption_history("a.png")
        assert len(history) == 2 and all(h["undone"] for h in history)


def test_undo_of_a_new_caption_removes_the_sidecar_it_created(tmp_path):
    root = tmp_path / "ds"
    _make(root, ["a.png"])
    with Dataset(root) as ds:
        ds.scan()
        ds.write_caption("a.png", "fresh")
        assert ds.undo_caption("a.png") is None
        assert not (root / "a.txt").exists()


def test_saving_an_empty_caption_creates_no_sidecar(tmp_path):
    root = tmp_path / "ds"
    _make(root, ["a.png"])
    with Dataset(root) as ds:
        ds.scan()
        assert ds.write_caption("a.png", " \n ") is False
        assert not (root / "a.txt").exists() and not ds.store.caption_history("a.png")
        ds.write_caption("a.png", "a cat")
        assert ds.write_caption("a.png", "") is True  # clearing an existing one is an edit
        assert (root / "a.txt").read_bytes() == b"" and ds.undo_caption("a.png") == "a cat"


def test_scan_survives_unreadable_files(tmp_path):
    root = tmp_path / "ds"
    _make(root, ["good.png"])
    (root / "empty.png").write_bytes(b"")
    (root / "text.png").write_text("hello")
    os.symlink(root / "missing.png", root / "broken.png")
    with Dataset(root) as ds:
        report = ds.scan()
        assert set(report.errors) == {"empty.png", "text.png", "broken.png"}
        assert "empty file" in report.errors["empty.png"]
        assert ds.store.image("good.png").error is None


def test_permission_denied_is_reported(tmp_path):
    if os.geteuid() == 0:
        import pytest

        pytest.skip("root reads any file; the broken-link case covers unreadable files here")
    root = tmp_path / "ds"
    _make(root, ["locked.png"])
    (root / "locked.png").chmod(0)
    with Dataset(root) as ds:
        report = ds.scan()
    assert "permission denied" in report.errors["locked.png"]


# -- issue 11 item 11: only regular files of bounded size are read -----------------------
def _scan_with_deadline(root, seconds: float = 60.0, **kw):
    """Scan in a thread and fail (instead of hanging the suite) if it does not finish."""
    import threading

    result: dict = {}

    def run():
        with Dataset(root) as ds:
            result["report"] = ds.scan(**kw)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the scan hung"
    return result["report"]


def test_scan_never_reads_fifos_devices_folders_or_huge_files(tmp_path):
    import os

    root = tmp_path / "ds"
    _make(root, ["good.png"])
    os.mkfifo(root / "pipe.png")
    os.symlink("/dev/zero", root / "zero.png")
    (root / "folder").mkdir()
    os.symlink(root / "folder", root / "linked_folder.jpg")
    with open(root / "huge.png", "wb") as fh:  # sparse: no disk used, 600 MiB to a reader
        fh.truncate(600 * 1024 * 1024)
    report = _scan_with_deadline(root)
    assert set(report.errors) == {"pipe.png", "zero.png", "linked_folder.jpg", "huge.png"}
    assert "named pipe" in report.errors["pipe.png"]
    assert "device" in report.errors["zero.png"]
    assert "folder" in report.errors["linked_folder.jpg"]
    assert "too large" in report.errors["huge.png"] and "MiB" in report.errors["huge.png"]
    with Dataset(root) as ds:
        assert ds.store.image("good.png").error is None


def test_a_folder_or_fifo_named_like_a_caption_is_an_error_naming_it(tmp_path):
    import os

    root = tmp_path / "ds"
    _make(root, ["a.png", "b.png", "c.png"])
    (root / "a.txt").mkdir()
    os.mkfifo(root / "b.txt")
    (root / "c.txt").write_text("a fine caption", encoding="utf-8")
    report = _scan_with_deadline(root)
    assert "a.txt is a folder" in report.errors["a.png"]
    assert "b.txt is not a regular file" in report.errors["b.png"]
    assert "c.png" not in report.errors
    with Dataset(root) as ds:
        with pytest.raises(dataset_mod.CaptionFileError, match="a.txt is a folder"):
            ds.read_caption("a.png")
        assert ds.store.image("a.png").error  # left out of caption / export until fixed
        again = ds.scan()
        assert again.unchanged == 3 and "a.png" in again.errors  # not re-read, still reported
        (root / "a.txt").rmdir()
        (root / "a.txt").write_text("fixed", encoding="utf-8")
        fixed = ds.scan()
        assert "a.png" not in fixed.errors and ds.store.image("a.png").caption == "fixed"


# -- issue 11 item 13: unreadable files are reported on every run ----------------------------
def test_unreadable_files_are_reported_by_every_scan_with_the_same_exit_code(tmp_path):
    from typer.testing import CliRunner

    from fluxgym_coach.cli import app

    root = tmp_path / "ds"
    _make(root, ["a.png"])
    (root / "broken.png").write_bytes(b"not a png")
    runner = CliRunner()
    first = runner.invoke(app, ["scan", str(root), "--json"])
    second = runner.invoke(app, ["scan", str(root), "--json"])
    assert first.exit_code == second.exit_code == 1
    import json

    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert list(a["errors"]) == list(b["errors"]) == ["broken.png"]
    assert b["unchanged"] == 2
    plain = runner.invoke(app, ["scan", str(root)])
    assert plain.exit_code == 1 and "broken.png" in plain.output


def test_worker_processes_measure_exactly_as_threads(tmp_path):
    """The process pool (large scans) and the thread pool (small ones) store the same
    records and the same audit measures."""
    import shutil

    from fluxgym_coach.audit.measures import stored_measures

    a = tmp_path / "a"
    names = [f"{i:02d}.{'jpg' if i % 3 else 'png'}" for i in range(dataset_mod.PROCESS_MIN_IMAGES + 4)]
    _make(a, names)
    (a / "broken.png").write_bytes(b"\x89PNG not really")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    fields = ("relpath", "digest", "width", "height", "format", "mode", "phash", "is_grayscale",
              "sharpness", "error")
    out = []
    for root, procs in ((a, True), (b, False)):
        with Dataset(root) as ds:
            report = ds.scan(processes=procs, workers=2)
            assert list(report.errors) == ["broken.png"] and report.measured == len(names)
            out.append(([tuple(getattr(r, f) for f in fields) for r in ds.images()],
                        stored_measures(ds.store)))
    assert out[0] == out[1]


@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_scan_names_new_images_before_reading_them_and_says_what_is_stored(tmp_path, processes,
                                                                          monkeypatch):
    from fluxgym_coach.events import ItemDone, ItemsFound, ItemsStored

    monkeypatch.setattr(dataset_mod, "FOUND_CHUNK", 5)  # names listed in chunks during the walk
    root = tmp_path / "ds"
    names = [f"sub/{i:02d}.{'png' if i % 2 else 'jpg'}" for i in range(12)]
    _make(root, names)
    (root / "sub" / "03.txt").write_text("a caption", encoding="utf-8")
    events: list[tuple[str, object]] = []
    with Dataset(root) as ds:
        def sink(event):
            if isinstance(event, ItemsStored):  # committed: another reader sees each record now
                assert all(ds.store.image(rel) is not None for rel in event.items)
            events.append((type(event).__name__, event))

        ds.scan(on_event=sink, batch=5, processes=processes, workers=2, headers=True)
        found = [e for kind, e in events if kind == "ItemsFound"]
        listed = [e for e in found if all(set(d) == {"size", "mtime_ns"} for d in e.items.values())]
        first_read = min(i for i, (kind, _) in enumerate(events) if kind in ("ItemDone", "JobStarted"))
        assert [len(e.items) for e in listed] == [5, 5, 2]
        assert all(events.index(("ItemsFound", e)) < first_read for e in listed)  # before any read
        assert sorted(rel for e in listed for rel in e.items) == sorted(names)
        sizes = {rel: (d["width"], d["height"]) for e in found if e not in listed
                 for rel, d in e.items.items()}
        recs = {r.relpath: r for r in ds.images()}
        assert sizes == {rel: (recs[rel].width, recs[rel].height) for rel in names}
        stored = [rel for kind, e in events if kind == "ItemsStored" for rel in e.items]
        assert sorted(stored) == sorted(names) and len(stored) == len(names)
        assert sum(isinstance(e, ItemDone) for _, e in events) == len(names)
        # a rescan of the unchanged folder finds nothing new
        events.clear()
        ds.scan(on_event=sink, headers=True)
        assert not [e for kind, e in events if kind in ("ItemsFound", "ItemsStored")]

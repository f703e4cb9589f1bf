"""Written files follow the umask when new and keep their mode when rewritten
(``tempfile.mkstemp`` alone would make every one of them 0600)."""

import os
import stat

import pytest
from typer.testing import CliRunner

from fluxgym_coach.cli import app
from fluxgym_coach.dataset import Dataset
from fluxgym_coach.fsutil import atomic_copy, atomic_write_bytes, atomic_write_text, current_umask


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """``umask(value)`` sets the process umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    os.umask(old)

    def set_(value: int) -> None:
        os.umask(value)

    yield set_
    os.umask(old)


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_new_files_follow_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_bytes(tmp_path / "sub" / "b.bin", b"y")
    atomic_copy(tmp_path / "a.txt", tmp_path / "c.txt")
    for name in ("a.txt", "sub/b.bin", "c.txt"):
        assert _mode(tmp_path / name) == 0o666 & ~mask, name


def test_rewritten_files_keep_their_mode(tmp_path, umask):
    umask(0o022)
    for mode in (0o664, 0o600, 0o644, 0o640):
        path = tmp_path / f"f{mode:o}.txt"
        path.write_text("old")
        path.chmod(mode)
        atomic_write_text(path, "new")
        assert path.read_text() == "new" and _mode(path) == mode


def test_editing_a_0664_caption_keeps_it_0664(example_dataset, umask):
    umask(0o022)
    cap = example_dataset / "chelsea.txt"
    cap.chmod(0o664)
    with Dataset(example_dataset) as ds:
        ds.scan()
        assert ds.write_caption("chelsea.png", "a tabby cat on a rug")
        assert _mode(cap) == 0o664
        assert ds.write_caption("astronaut.png", "an astronaut")  # a new caption: the umask
    assert _mode(example_dataset / "astronaut.txt") == 0o644


def test_export_is_readable_by_the_group_under_umask_002(example_dataset, tmp_path, umask):
    umask(0o002)
    out = tmp_path / "fg"
    r = CliRunner().invoke(app, ["export", str(example_dataset), "-o", str(out), "-t", "ohwx"])
    assert r.exit_code == 0, r.output
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "train.sh"]
    assert files and {p.name: _mode(p) for p in files} == {p.name: 0o664 for p in files}

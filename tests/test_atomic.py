"""tfxfer.utils.atomic: write-then-rename files and directories, one temporary-name scheme."""

import os
import stat
import subprocess
import sys

import pytest

from tfxfer.utils import atomic


def _entries(directory):
    return sorted(p.name for p in directory.iterdir())


def test_temporary_names_are_hidden_never_integers_and_name_their_process(tmp_path):
    temp = atomic.temp_path(tmp_path, "export")
    assert temp.parent == tmp_path and temp.name.startswith(".export.tmp-")
    assert atomic.owner_pid(temp.name) == os.getpid()
    assert temp != atomic.temp_path(tmp_path, "export")  # a fresh token each time
    assert atomic.owner_pid(".epoch-0003.tmp-123-x") == 123
    assert [atomic.owner_pid(n) for n in ("3", "export.tmp-1-x", ".hidden", ".a.tmp-x-1")] == [
        None, None, None, None]


def test_a_file_appears_whole_and_replaces_the_old_one(tmp_path):
    target = tmp_path / "sub" / "models.config"
    with atomic.atomic_file(target) as f:
        f.write("first")
        assert not target.exists()  # nothing under the name until the block ends
        assert atomic.owner_pid(_entries(target.parent)[0]) == os.getpid()
    assert target.read_text() == "first"
    atomic.write_text(target, "second")
    assert target.read_text() == "second" and _entries(target.parent) == ["models.config"]


def test_a_failed_file_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic.atomic_file(target) as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and _entries(tmp_path) == ["state.json"]


def test_file_permissions_are_set_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        private = atomic.write_text(tmp_path / "private", "x")
        shared = atomic.write_text(tmp_path / "shared", "x", permissions=0o644)
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644


def test_bytes_mode_and_a_bad_mode(tmp_path):
    with atomic.atomic_file(tmp_path / "a.npz", "wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "a.npz").read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="Received: 'a'"):
        with atomic.atomic_file(tmp_path / "b", "a"):
            pass


def test_a_directory_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "export"
    with atomic.atomic_dir(target) as temp:
        (temp / "saved_model.pb").write_bytes(b"pb")
        assert not target.exists() and temp.name.startswith(".export.tmp-")
    assert _entries(target) == ["saved_model.pb"] and _entries(tmp_path) == ["export"]
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_dir(tmp_path / "killed") as temp:
            (temp / "half").write_text("x")
            raise KeyboardInterrupt
    assert _entries(tmp_path) == ["export"]


def test_an_existing_directory_is_never_overwritten_unless_asked(tmp_path):
    target = tmp_path / "epoch-0001"
    target.mkdir()
    (target / "old").write_text("x")
    with pytest.raises(FileExistsError, match="nothing was overwritten"):
        with atomic.atomic_dir(target) as temp:
            (temp / "new").write_text("y")
    assert _entries(target) == ["old"] and _entries(tmp_path) == ["epoch-0001"]
    with atomic.atomic_dir(target, replace=True) as temp:
        (temp / "new").write_text("y")
    assert _entries(target) == ["new"] and _entries(tmp_path) == ["epoch-0001"]


def test_temporary_directories_follow_the_umask(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    temp = atomic.make_temp_dir(tmp_path / "model", "export")
    assert stat.S_IMODE(temp.stat().st_mode) == 0o777 & ~umask


def test_remove_temps_keeps_live_writers_unless_told(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        (tmp_path / f".export.tmp-{dead}-a").mkdir()
        (tmp_path / f".export.tmp-{child.pid}-b").mkdir()
        (tmp_path / f".base-0001.npz.tmp-{dead}-c").write_bytes(b"")
        mine = atomic.make_temp_dir(tmp_path, "export")
        removed = atomic.remove_temps(tmp_path, "export")
        assert [p.name for p in removed] == [f".export.tmp-{dead}-a"]
        removed = atomic.remove_temps(tmp_path, keep_live=False)
        assert sorted(p.name for p in removed) == [f".base-0001.npz.tmp-{dead}-c",
                                                   f".export.tmp-{child.pid}-b"]
        assert _entries(tmp_path) == [mine.name]  # this process's own is never removed
    finally:
        child.kill()
        child.wait()
    assert atomic.remove_temps(tmp_path / "missing") == []

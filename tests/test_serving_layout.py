"""BASE/NAME/VERSION numbering, never overwriting, temporary directories, publishing.

The naming rules come from `tfxfer.serving.contract`, shared with `tfxfer serve`.
"""

import os
import stat
import subprocess
import sys

import pytest

from tfxfer.serving import contract
from tfxfer.serving.export import layout


def _version(path, number, complete=True):
    version = path / str(number)
    version.mkdir(parents=True)
    if complete:
        (version / "saved_model.pb").write_bytes(b"pb")
    return version


def test_versions_are_the_integer_directories_only(tmp_path):
    model = tmp_path / "flowers"
    assert contract.list_versions(model) == [] and layout.next_version(model) == 1
    for number in (1, 3, 10):
        _version(model, number)
    (model / "abc").mkdir()
    (model / f"{layout.TEMP_PREFIX}123-x").mkdir()
    (model / "7").write_text("a file, not a version")
    assert contract.list_versions(model) == [1, 3, 10]
    assert layout.next_version(model) == 11


@pytest.mark.parametrize("name", ["", ".hidden", "..", "a/b", "a\\b", "a\0b", "12"])
def test_bad_model_names_are_rejected(tmp_path, name):
    with pytest.raises(ValueError, match="Invalid model name"):
        layout.model_dir(tmp_path, name)
    assert not contract.is_model_name(name)


@pytest.mark.parametrize("version", [0, -1, True, "2"])
def test_versions_must_be_positive_integers(tmp_path, version):
    with pytest.raises(ValueError, match="positive integer"):
        layout.check_new_version(tmp_path, version)


def test_publish_renames_into_place_and_never_overwrites(tmp_path):
    model = tmp_path / "flowers"
    existing = _version(model, 1)
    temp = layout.make_temp_dir(model)
    (temp / "saved_model.pb").write_bytes(b"new")

    with pytest.raises(FileExistsError, match="Version 1 already exists"):
        layout.publish(temp, model, 1)
    assert (existing / "saved_model.pb").read_bytes() == b"pb" and temp.is_dir()

    published = layout.publish(temp, model, 2)
    assert published == model / "2" and not temp.exists()
    assert (published / "saved_model.pb").read_bytes() == b"new"


def test_temp_dirs_are_hidden_non_integer_and_readable_after_publishing(tmp_path):
    temp = layout.make_temp_dir(tmp_path / "m")
    assert temp.parent == tmp_path / "m"
    assert temp.name.startswith(f"{layout.TEMP_PREFIX}{os.getpid()}-")
    assert not temp.name.isdigit()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(temp.stat().st_mode) == 0o777 & ~umask


def test_only_temp_dirs_of_finished_processes_are_removed(tmp_path):
    model = tmp_path / "m"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = model / f"{layout.TEMP_PREFIX}{dead.stdout.strip()}-abc"
    running_elsewhere = model / f"{layout.TEMP_PREFIX}{os.getppid()}-def"
    own = layout.make_temp_dir(model)
    for path in (stale, running_elsewhere):
        path.mkdir(parents=True)
        (path / "saved_model.pb").write_bytes(b"half")
    version = _version(model, 1)

    assert layout.remove_stale_temp_dirs(model) == [stale]
    assert not stale.exists()
    assert running_elsewhere.is_dir() and own.is_dir() and version.is_dir()


def test_find_models_lists_complete_versions(tmp_path):
    _version(tmp_path / "flowers", 1)
    _version(tmp_path / "flowers", 2)
    _version(tmp_path / "flowers", 3, complete=False)
    _version(tmp_path / "imdb", 5)
    (tmp_path / "empty" / f"{layout.TEMP_PREFIX}1-x").mkdir(parents=True)
    (tmp_path / ".hidden" / "1").mkdir(parents=True)
    _version(tmp_path / "12", 1)  # an integer is a version directory, never a model
    assert contract.find_models(tmp_path) == {"flowers": [1, 2], "imdb": [5]}
    with pytest.raises(FileNotFoundError, match="not found"):
        contract.find_models(tmp_path / "missing")


def test_publish_next_skips_a_version_taken_meanwhile(tmp_path, monkeypatch):
    model = tmp_path / "flowers"
    _version(model, 1)
    temp = layout.make_temp_dir(model)
    (temp / "saved_model.pb").write_bytes(b"new")
    real_next = layout.next_version
    raced = []

    def racing_next(path):
        version = real_next(path)
        if not raced:  # a concurrent export publishes this version first
            raced.append(_version(model, version))
        return version

    monkeypatch.setattr(layout, "next_version", racing_next)
    assert layout.publish_next(temp, model) == (3, model / "3")
    assert raced == [model / "2"] and (model / "2" / "saved_model.pb").read_bytes() == b"pb"
    assert (model / "3" / "saved_model.pb").read_bytes() == b"new"


def test_publish_copy_publishes_a_copy_and_leaves_no_temp(tmp_path):
    source = _version(tmp_path / "src", 1)
    model = tmp_path / "m"
    assert layout.publish_copy(source, model) == model / "1"
    assert layout.publish_copy(source, model, 5) == model / "5"
    with pytest.raises(FileExistsError):
        layout.publish_copy(source, model, 5)
    assert contract.list_versions(model) == [1, 5]
    assert (model / "5" / "saved_model.pb").read_bytes() == b"pb"
    assert not list(model.glob(f"{layout.TEMP_PREFIX}*"))

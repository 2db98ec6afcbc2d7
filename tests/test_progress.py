"""Progress bars: drawn on a terminal only, off with --quiet or verbose 0."""

import io
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_image_folder

from tfxfer import cli
from tfxfer.utils import progress as progress_module
from tfxfer.utils.progress import progress, progress_enabled, set_progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def terminal(monkeypatch):
    """A function replacing stderr by a fake terminal, bars on as in a fresh process.

    Called in the test body: pytest's capture sets sys.stderr again between a
    fixture's setup and the test.
    """
    def use():
        fake = _Terminal()
        monkeypatch.setattr(sys, "stderr", fake)
        monkeypatch.setitem(progress_module._state, "enabled", True)
        return fake
    return use


def test_bars_only_on_a_terminal(terminal, monkeypatch):
    terminal = terminal()
    assert progress_enabled() and not progress_enabled(False)
    list(progress(range(3), desc="counting"))
    assert "counting" in terminal.getvalue()
    set_progress(False)
    assert not progress_enabled()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe or a log file
    set_progress(True)
    assert not progress_enabled()


@pytest.mark.parametrize("flags,shown", [([], True), (["--quiet"], False)])
def test_quiet_turns_bars_off(terminal, flags, shown):
    terminal()
    assert cli.main([*flags, "runs", "--dir", "."]) == 0
    assert progress_enabled() is shown


def test_train_verbose_0_turns_bars_off(terminal, tmp_path):
    terminal()
    cli.main(["train", "--data", str(tmp_path / "missing"), "--verbose", "0"])  # fails early
    assert not progress_enabled()


def test_folder_check_shows_a_bar(terminal, tmp_path):
    from tfxfer.data.images import scan_image_folder

    terminal = terminal()
    scan_image_folder(make_image_folder(tmp_path / "photos", per_class=2))
    assert "checking photos" in terminal.getvalue()


class _Extractor:
    shape = (2,)

    def __call__(self, inputs, training=False):
        return np.ones((len(inputs), 2), np.float32)


@pytest.mark.parametrize("show", [True, False])
def test_feature_extraction_shows_a_bar_unless_verbose_0(terminal, tmp_path, show):
    from tfxfer.training.bottleneck import compute_features, load_features

    terminal = terminal()
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((5, 3), np.float32),
                                             np.arange(5))).batch(2)
    compute_features(_Extractor(), ds, tmp_path / "f", 5, 0, 1, desc="train features",
                     show_progress=None if show else False)
    x, y = load_features(tmp_path / "f")
    assert x.shape == (5, 2) and y.tolist() == [0, 1, 2, 3, 4]
    assert ("train features" in terminal.getvalue()) is show

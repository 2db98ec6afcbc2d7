import os
import subprocess
import sys

import pytest

from tfxfer.runtime import onednn


@pytest.fixture
def fresh_process(monkeypatch):
    """No user setting and TensorFlow not imported yet, as at an entry point."""
    monkeypatch.delenv(onednn.ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setattr(onednn, "_decision", None)


def _gpu_driver(tmp_path):
    gpus = tmp_path / "gpus"
    (gpus / "0000:01:00.0").mkdir(parents=True)
    return gpus


def test_on_by_default_without_a_gpu(fresh_process, tmp_path):
    assert onednn.enable_onednn_default(tmp_path / "no-driver") == "tfxfer default"
    assert os.environ[onednn.ENV] == "1"
    assert onednn.onednn_record() == {onednn.ENV: "1", "decided_by": "tfxfer default"}


@pytest.mark.parametrize("value", ["0", "1"])
def test_an_explicit_user_setting_wins(fresh_process, monkeypatch, tmp_path, value):
    monkeypatch.setenv(onednn.ENV, value)
    assert onednn.enable_onednn_default(tmp_path / "no-driver") == "user"
    assert os.environ[onednn.ENV] == value


def test_left_unset_when_a_gpu_is_in_use(fresh_process, tmp_path):
    assert onednn.enable_onednn_default(_gpu_driver(tmp_path)) == "gpu"
    assert onednn.ENV not in os.environ


@pytest.mark.parametrize("hidden", ["", "-1"])
def test_a_gpu_hidden_by_cuda_visible_devices_is_not_in_use(fresh_process, monkeypatch,
                                                            tmp_path, hidden):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
    assert onednn.enable_onednn_default(_gpu_driver(tmp_path)) == "tfxfer default"


def test_too_late_once_tensorflow_is_imported(fresh_process, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorflow", object())
    assert onednn.enable_onednn_default(tmp_path) == "tensorflow already imported"
    assert onednn.ENV not in os.environ


def test_the_cli_sets_it_before_a_command_imports_tensorflow():
    code = (
        "import os, sys\n"
        "from tfxfer import cli\n"
        "from tfxfer.runtime import onednn\n"
        "cli.main(['--log-level', 'ERROR', 'list-backbones'])\n"
        "assert 'tensorflow' in sys.modules\n"
        "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), onednn.onednn_record()['decided_by'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != onednn.ENV}
    env["CUDA_VISIBLE_DEVICES"] = "-1"
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip().splitlines()[-1] == "1 tfxfer default"

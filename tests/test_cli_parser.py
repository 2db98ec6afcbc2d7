"""The `tfxfer` parsers (groups, defaults, errors) and the checks before TensorFlow.

Nothing here trains or imports TensorFlow in this process (the fast-failure checks
run `tfxfer` in a subprocess to see that it is not imported).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfxfer import cli
from tfxfer.config import STRATEGIES, load_config
from tfxfer.runtime import native_log
from tfxfer.runtime.preflight import check_run_paths

ROOT = Path(__file__).resolve().parents[1]


def _command(name):
    return cli.build_parser()._subparsers._group_actions[0].choices[name]


def _groups(parser):
    """{group title: [option strings]} of a parser."""
    return {g.title: [s for a in g._group_actions for s in a.option_strings]
            for g in parser._action_groups if g._group_actions}


def test_train_help_is_grouped_and_every_flag_has_help():
    train = _command("train")
    groups = _groups(train)
    assert [g for g in groups if g in cli.GROUPS] == list(cli.GROUPS)
    assert "--data" in groups[cli.DATA] and "--backbone" in groups[cli.MODEL]
    assert "--epochs" in groups[cli.TRAINING] and "--bottleneck-cache" in groups[cli.SPEED]
    assert "--adaptation-lambda" in groups[cli.ADAPTATION] and "--resume" in groups[cli.RUN]
    assert "--layer-lr-block" in groups[cli.TRAINING]  # documented, now accepted
    for action in train._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 12, action.option_strings


@pytest.mark.parametrize("row", cli._TRAIN_FLAGS, ids=[r[0] for r in cli._TRAIN_FLAGS])
def test_each_flag_shows_its_config_default(row):
    flag, section, key, _ = row
    action = next(a for a in _command("train")._actions if flag in a.option_strings)
    default = cli.config_default(section, key)  # raises when the field does not exist
    assert action.help.endswith(f"[{section}.{key}; default: {cli._shown(default)}]")


def test_defaults_are_read_from_the_dataclasses(monkeypatch):
    from tfxfer.config import DataConfig, RunConfig

    # The help reads RunConfig(): a default changed there shows in --help.
    monkeypatch.setattr(cli, "RunConfig", lambda: RunConfig(data=DataConfig(batch_size=7)))
    action = next(a for a in _command("train")._actions if a.dest == "batch_size")
    assert action.help.endswith("default: 7]")


def test_switch_rows_name_existing_fields():
    # --no-mixed-precision sets the default on purpose: it undoes a config file's `auto`.
    undo = {"--no-mixed-precision"}
    for flag, section, key, value, _ in cli._TRAIN_SWITCHES:
        assert (cli.config_default(section, key) is not value) is (flag not in undo), flag


def test_train_help_renders():
    text = _command("train").format_help()
    assert "Caching & speed:" in text and "Domain adaptation:" in text
    assert text.startswith("usage: tfxfer train --data FOLDER|CSV|tfds:NAME [options]")


@pytest.mark.parametrize("name,absent", [
    ("advise", ["--resume", "--epochs", "--adaptation-lambda", "--bottleneck-cache",
                "--strategy"]),
    ("lr-find", ["--resume", "--target-data", "--distribute", "--no-tensorboard"]),
])
def test_advise_and_lr_find_take_only_their_flags(name, absent):
    options = {s for a in _command(name)._actions for s in a.option_strings}
    assert {"--data", "--backbone", "--config", "--out"} <= options
    assert not options & set(absent)
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([name, "--resume", "runs/x"])


def test_lr_find_keeps_the_training_flags_it_reads():
    args = cli.build_parser().parse_args(["lr-find", "--learning-rate", "auto", "--steps", "5"])
    assert args.learning_rate == "auto" and args.steps == 5
    assert cli.train_overrides(args) == {"train": {"learning_rate": "auto"}}


def test_abbreviations_are_refused():
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--epoch", "3"])
    assert parser.parse_args(["train", "--epochs", "3"]).epochs == 3


def test_errors_are_one_line_and_a_hint(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--epochs", "ten"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ["tfxfer train: error: argument --epochs: invalid int value: 'ten'",
                   "Run 'tfxfer train --help' for the options."]


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tfxfer {cli.package_version()}"


@pytest.mark.parametrize("typed,name", [("fine-tune-all", "fine_tune_all"),
                                        ("feature_extraction", "feature_extraction"),
                                        ("domain-adaptation", "domain_adaptation")])
def test_strategy_names_take_dashes(typed, name):
    args = cli.build_parser().parse_args(["train", "--strategy", typed,
                                          "--distribute", "multi-worker"])
    assert args.strategy == name and args.distribute == "multi_worker"
    assert name in STRATEGIES


# ---------------------------------------------------------------- before TensorFlow


def _config(**data):
    return load_config(overrides={"data": data} if data else None)


def test_preflight_names_missing_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data \(data.source\) not found: .*nowhere"):
        check_run_paths(_config(source=str(tmp_path / "nowhere")))
    with pytest.raises(FileNotFoundError, match="text file .*reviews.csv does not exist"):
        check_run_paths(_config(source=str(tmp_path / "reviews.csv")))
    (tmp_path / "photo.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="must be a folder of class subfolders"):
        check_run_paths(_config(source=str(tmp_path / "photo.jpg")))
    with pytest.raises(FileNotFoundError, match="--test-data"):
        check_run_paths(_config(source=str(tmp_path), test_source=str(tmp_path / "t")))
    with pytest.raises(FileNotFoundError, match="--unlabelled-data"):
        check_run_paths(_config(source=str(tmp_path), unlabelled_source=str(tmp_path / "u")))
    with pytest.raises(FileNotFoundError, match=r"--from \(continual.parent\): no such"):
        check_run_paths(load_config(overrides={"data": {"source": str(tmp_path)},
                                               "continual": {"parent": str(tmp_path / "p")}}))
    check_run_paths(_config(source=str(tmp_path)))  # an existing folder passes
    check_run_paths(_config(source="tfds:anything"))  # TFDS names are checked by TFDS


def test_preflight_names_bad_backbones_weights_encoders_and_resume(tmp_path):
    def config(**image):
        return load_config(overrides={"data": {"source": str(tmp_path)},
                                      "model": {"image": image}})
    with pytest.raises(ValueError, match="Unknown backbone 'resnet9'. Valid backbones: vgg16"):
        check_run_paths(config(backbone="resnet9"))
    check_run_paths(config(backbone="MobileNet-V2"))  # registry matching
    with pytest.raises(FileNotFoundError, match="Weights file not found"):
        check_run_paths(config(weights=str(tmp_path / "w.h5")))
    text = load_config(overrides={"model": {"text": {"encoder": "./vectors/glove.txt"}}})
    with pytest.raises(FileNotFoundError, match="--encoder"):
        check_run_paths(text)
    with pytest.raises(FileNotFoundError, match="--resume: no such directory"):
        check_run_paths(config(), resume=tmp_path / "run")
    with pytest.raises(FileNotFoundError,
                       match=r"not a tfxfer run directory \(missing: config.json\)"):
        check_run_paths(config(), resume=tmp_path)


def _run_tfxfer(args, cwd):
    """Runs cli.main in a fresh interpreter: (exit code, seconds in main, TF imported, stderr)."""
    code = ("import sys, time, json\nfrom tfxfer import cli\nstart = time.perf_counter()\n"
            f"code = cli.main({args!r})\n"
            "print(json.dumps([code, time.perf_counter() - start, 'tensorflow' in sys.modules]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    return (*json.loads(done.stdout.strip().splitlines()[-1]), done.stderr)


@pytest.mark.parametrize("args,message", [
    (["train", "--data", "missing_photos"], "--data (data.source) not found: missing_photos"),
    (["train", "--data", ".", "--backbone", "mobilenet_v9"], "Unknown backbone 'mobilenet_v9'"),
    (["train", "--config", "nope.yaml"], "Config file not found: nope.yaml"),
    (["train", "--resume", "runs/gone"], "--resume: no such directory: runs/gone"),
    (["advise", "--data", "reviews.csv"], "text file reviews.csv does not exist"),
    (["evaluate", "runs/gone"], "RUN_DIR: no such directory: runs/gone"),
])
def test_a_bad_path_fails_at_once_in_one_line_and_leaves_nothing(tmp_path, args, message):
    code, seconds, tensorflow, stderr = _run_tfxfer(args, tmp_path)
    assert code == 2 and not tensorflow
    assert seconds < 1.0, seconds
    lines = stderr.splitlines()
    assert len(lines) == 1 and message in lines[0], stderr
    assert list(tmp_path.iterdir()) == []  # no runs/<timestamp>/


def test_native_log_lines_below_the_level_are_dropped(monkeypatch):
    info = "I0000 00:00:1796604765.862729   20820 port.cc:153] oneDNN custom operations are on."
    error = "E0000 00:00:1796604765.862729   20820 op_kernel.cc:1] Out of memory"
    notice = "WARNING: All log messages before absl::InitializeLog() is called are written"
    assert not native_log.keep_line(info, 2) and not native_log.keep_line(notice, 2)
    assert native_log.keep_line(error, 2) and not native_log.keep_line(error, 3)
    assert native_log.keep_line(info, 0) and native_log.keep_line("Traceback (most", 2)
    cuinit = ("E0000 00:00:1796605545.992484 1729 cuda_platform.cc:52] failed call to cuInit: "
              "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
    monkeypatch.setattr(native_log, "gpu_in_use", lambda: False)
    assert not native_log.keep_line(cuinit, 2)  # expected without a GPU
    monkeypatch.setattr(native_log, "gpu_in_use", lambda: True)
    assert native_log.keep_line(cuinit, 2)  # a GPU that fails to initialise is news


def test_native_log_filter_acts_on_file_descriptor_2(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_log.native_log_filtered():
        os.write(2, b"I1207 00:52:43.307 1 port.cc:153] noise\nkept line\n")
    assert capfd.readouterr().err == "kept line\n"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # overridable: everything shown
    with native_log.native_log_filtered():
        os.write(2, b"I1207 00:52:43.307 1 port.cc:153] noise\n")
    assert "noise" in capfd.readouterr().err


def test_an_unknown_tfds_name_is_one_line(tmp_path):
    from tfxfer.config import DataConfig
    from tfxfer.data.tfds_source import load_tfds_splits

    data = DataConfig(source="tfds:no_such_dataset", tfds_data_dir=str(tmp_path))
    with pytest.raises(ValueError) as error:
        load_tfds_splits(data, 32)
    message = str(error.value)
    assert "Unknown TFDS dataset 'no_such_dataset'" in message
    assert "\n" not in message and "abstract_reasoning" not in message  # no catalogue dump

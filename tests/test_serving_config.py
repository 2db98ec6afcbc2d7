"""models.config: one model_config_list entry per exported model, parsed back with the protos."""

import pytest
from tensorflow_serving.config import model_server_config_pb2

from tfxfer import cli
from tfxfer.serving.model_config import build_model_config, parse_model_config, to_text
from tfxfer.serving.policy import VersionPolicy


@pytest.fixture
def base(tmp_path):
    for name, versions in (("flowers", (1, 2, 3)), ("imdb", (1,))):
        for v in versions:
            (tmp_path / "models" / name / str(v)).mkdir(parents=True)
            (tmp_path / "models" / name / str(v) / "saved_model.pb").write_bytes(b"pb")
    (tmp_path / "models" / "flowers" / ".tmp-export-1-x").mkdir()
    return tmp_path / "models"


def _entries(config):
    return {c.name: c for c in config.model_config_list.config}


def test_latest_policy_with_local_paths(base):
    config = build_model_config(base, policy=VersionPolicy(num_versions=2))
    parsed = parse_model_config(to_text(config))
    assert isinstance(parsed, model_server_config_pb2.ModelServerConfig) and parsed == config
    entries = _entries(parsed)
    assert sorted(entries) == ["flowers", "imdb"]
    assert entries["flowers"].base_path == str((base / "flowers").resolve())
    assert entries["flowers"].model_platform == "tensorflow"
    assert entries["flowers"].model_version_policy.WhichOneof("policy_choice") == "latest"
    assert entries["imdb"].model_version_policy.latest.num_versions == 2


def test_all_and_specific_policies_with_a_mount_path(base):
    config = build_model_config(base, policy=VersionPolicy("all"), mount_path="/models")
    entries = _entries(parse_model_config(to_text(config)))
    assert entries["flowers"].base_path == "/models/flowers"
    assert entries["imdb"].model_version_policy.WhichOneof("policy_choice") == "all"

    with pytest.raises(ValueError, match="'imdb' has no version"):
        build_model_config(base, policy=VersionPolicy("specific", versions=(2, 3)))
    config = build_model_config(base, policy=VersionPolicy("specific", versions=(1,)))
    assert list(_entries(config)["flowers"].model_version_policy.specific.versions) == [1]


@pytest.mark.parametrize("options, message", [
    ({"kind": "newest"}, "Unknown version policy"),
    ({"kind": "specific"}, "needs the versions"),
    ({"kind": "all", "versions": (1,)}, "only with the 'specific' policy"),
    ({"num_versions": 0}, "num_versions must be >= 1"),
])
def test_bad_policies_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        VersionPolicy(**options)


@pytest.mark.parametrize("flags, policy", [
    ([], VersionPolicy()),
    (["--num-versions", "2"], VersionPolicy(num_versions=2)),
    (["--policy", "all"], VersionPolicy("all")),
    (["--policy", "specific", "--versions", "3,1"], VersionPolicy("specific", versions=(3, 1))),
])
def test_serve_and_serving_config_read_the_same_policy_flags(tmp_path, flags, policy):
    parser = cli.build_parser()
    config = parser.parse_args(["serving-config", str(tmp_path), *flags])
    serve = parser.parse_args(["serve", str(tmp_path), *flags])
    assert VersionPolicy.from_args(config) == VersionPolicy.from_args(serve) == policy


@pytest.mark.parametrize("flags", [["--num-versions", "0"], ["--versions", "1,x"],
                                   ["--versions", "-1"], ["--policy", "newest"]])
def test_bad_policy_flags_are_refused_by_both_commands(tmp_path, flags, capsys):
    parser = cli.build_parser()
    for command in ("serving-config", "serve"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, str(tmp_path), *flags])
        assert flags[0] in capsys.readouterr().err


def test_empty_base_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No exported models"):
        build_model_config(tmp_path)


def test_serving_config_command_writes_a_parseable_file(base, capsys):
    code = cli.main(["serving-config", str(base), "--mount-path", "/models",
                     "--policy", "specific", "--versions", "1"])
    assert code == 0
    text = (base / "models.config").read_text()
    assert text.startswith("model_config_list {")
    entries = _entries(parse_model_config(text))
    assert entries["flowers"].base_path == "/models/flowers"
    assert list(entries["imdb"].model_version_policy.specific.versions) == [1]
    assert "wrote" in capsys.readouterr().out
    assert not [p for p in base.iterdir() if p.name.startswith(".models.config")]

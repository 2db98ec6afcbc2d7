"""`tfxfer serve --model-config-file`: models, policies and labels from models.config, reloaded."""

import time

import pytest
from server_models import cleanup_built, http_request, publish

from tfxfer import cli
from tfxfer.serving.model_config import read_model_config
from tfxfer.serving.server import ModelServer, ServerConfig, VersionPolicy


@pytest.fixture(scope="module", autouse=True)
def _built_models():
    yield
    cleanup_built()


def _entry(name: str, base_path: str, policy: str, labels: dict | None = None) -> str:
    label_text = "".join(f' version_labels {{ key: "{k}" value: {v} }}'
                         for k, v in (labels or {}).items())
    return (f'config {{ name: "{name}" base_path: "{base_path}" model_platform: "tensorflow" '
            f"model_version_policy {{ {policy} }}{label_text} }}")


def _write(path, *entries: str) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text("model_config_list { " + " ".join(entries) + " }\n")
    temp.replace(path)


def _score(port: int, path: str):
    status, body = http_request(port, "POST", path, {"instances": ["abc"]})
    return body["predictions"][0]["score"] if status == 200 else status


def _wait_for(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout} s")


def test_models_policies_and_labels_come_from_the_file_and_reload(tmp_path):
    publish(tmp_path / "store" / "tiny", 1, scale=1.0)
    publish(tmp_path / "store" / "tiny", 2, scale=2.0)
    config_file = tmp_path / "models.config"
    _write(config_file, _entry("flowers", "store/tiny", "specific { versions: 1 }",
                               {"stable": 1}))
    config = ServerConfig(None, rest_port=0, grpc_port=0, poll_seconds=0.2,
                          model_config_file=config_file)
    with ModelServer(config) as server:
        port = server.rest_port
        assert server.manager.model_names() == ["flowers"]
        assert _score(port, "/v1/models/flowers:predict") == 3.0  # version 1 only
        assert _score(port, "/v1/models/flowers/labels/stable:predict") == 3.0

        _write(config_file, _entry("flowers", "store/tiny", "specific { versions: 1 }"),
               _entry("second", str(tmp_path / "store" / "tiny"), "latest { num_versions: 1 }"))
        _wait_for(lambda: _score(port, "/v1/models/second:predict") == 6.0, "second loaded")

        _write(config_file, _entry("second", "store/tiny", "latest { num_versions: 1 }"))
        _wait_for(lambda: _score(port, "/v1/models/flowers:predict") == 404, "flowers removed")

        config_file.write_text("model_config_list { config { name: ")  # a broken edit
        time.sleep(1.0)
        assert _score(port, "/v1/models/second:predict") == 6.0
        assert server.manager.model_names() == ["second"]


@pytest.mark.parametrize("text,message", [
    ("model_config_list { config { name: ", "not a ModelServerConfig"),
    ('model_config_list { config { name: "a" base_path: "x" } '
     'config { name: "a" base_path: "y" } }', "listed twice"),
    ('model_config_list { config { name: "../a" base_path: "x" } }', "Invalid model name"),
    ('model_config_list { config { name: "a" base_path: "x" model_platform: "pytorch" } }',
     "only 'tensorflow'"),
])
def test_a_bad_config_file_is_refused_at_start(tmp_path, text, message):
    config_file = tmp_path / "models.config"
    config_file.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_model_config(config_file)
    with pytest.raises(ValueError, match=message):
        ModelServer(ServerConfig(None, rest_port=0, grpc_port=0,
                                 model_config_file=config_file)).start()


def test_version_labels_or_a_policy_beside_a_config_file_are_refused(tmp_path, caplog):
    # The file is re-read every poll and its labels and policies replace these: they
    # would be dropped without a word, so the combination is refused.
    config_file = tmp_path / "models.config"
    _write(config_file, _entry("flowers", "store/tiny", "latest { num_versions: 1 }"))
    with pytest.raises(ValueError, match=(
            r"--version-label \(flowers:stable=1\) cannot be combined with "
            r"--model-config-file .*models.config: the file's labels replace them.*"
            r'in the model_config of .flowers.: version_labels \{ key: "stable" value: 1 \}')):
        ServerConfig(None, model_config_file=config_file,
                     version_labels={"flowers": {"stable": 1}})
    with pytest.raises(ValueError, match="model_version_policy in the file decides"):
        ServerConfig(None, model_config_file=config_file, policy=VersionPolicy("all"))
    assert cli.main(["serve", "--model-config-file", str(config_file),
                     "--version-label", "flowers:stable=1"]) == 2
    assert "Put the labels in the file" in caplog.text

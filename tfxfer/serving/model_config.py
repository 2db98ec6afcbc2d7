"""models.config for `tensorflow_model_server --model_config_file`.

One `config` entry per model found under the base directory, written as a
`ModelServerConfig` text proto built with the tensorflow-serving-api protos:

    model_config_list {
      config {
        name: "flowers"
        base_path: "/models/flowers"
        model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 1 } }
      }
    }

`mount_path` rewrites the base paths for a server that sees the base directory
elsewhere, e.g. `/models` inside the tensorflow/serving container.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfxfer.serving.contract import check_model_name, find_models
from tfxfer.serving.policy import VersionPolicy
from tfxfer.utils import atomic

CONFIG_FILE = "models.config"


def build_model_config(
    base: str | Path,
    *,
    policy: VersionPolicy | None = None,
    mount_path: str | None = None,
) -> model_server_config_pb2.ModelServerConfig:
    """A `ModelServerConfig` listing every model under `base`.

    Args:
        base: the base directory of exported models (BASE/NAME/VERSION).
        policy: the versions served (default: the latest one); the versions of a
            "specific" policy must exist for every model.
        mount_path: where the server sees `base` (e.g. "/models" in docker);
            None writes absolute paths of this machine.

    Returns:
        The config proto.
    """
    policy = policy or VersionPolicy()
    models = find_models(base)
    if not models:
        raise FileNotFoundError(f"No exported models (NAME/VERSION/saved_model.pb) under {base}")
    config = model_server_config_pb2.ModelServerConfig()
    for name, found in models.items():
        missing = policy.missing(found) if policy.kind == "specific" else []
        if missing:
            raise ValueError(f"Model {name!r} has no version(s) {missing}; it has {found}.")
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = (str(PurePosixPath(mount_path, name)) if mount_path
                           else str(Path(base, name).resolve()))
        entry.model_platform = "tensorflow"
        entry.model_version_policy.CopyFrom(policy.to_proto())
    return config


def to_text(config: model_server_config_pb2.ModelServerConfig) -> str:
    return text_format.MessageToString(config)


def parse_model_config(text: str) -> model_server_config_pb2.ModelServerConfig:
    """Parses a models.config text proto (as tensorflow_model_server does)."""
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


@dataclass(frozen=True)
class ServedModel:
    """One `config` entry of a models.config, as `tfxfer serve` uses it."""

    name: str
    base_path: Path
    policy: VersionPolicy
    version_labels: dict[str, int]


def read_model_config(path: str | Path) -> dict[str, ServedModel]:
    """The models a models.config file lists, by name.

    Relative base paths are read from the file's directory.

    Raises:
        ValueError: the file is no ModelServerConfig text proto, lists a model twice,
            names a model badly, or uses a platform other than tensorflow.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    try:
        config = parse_model_config(path.read_text())
    except text_format.ParseError as err:
        raise ValueError(f"{path}: not a ModelServerConfig text proto: {err}") from err
    if config.WhichOneof("config") == "custom_model_config":
        raise ValueError(f"{path}: custom_model_config is not supported; use "
                         "model_config_list.")
    models: dict[str, ServedModel] = {}
    for entry in config.model_config_list.config:
        where = f"{path}: model {entry.name!r}"
        try:
            check_model_name(entry.name)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
        if entry.name in models:
            raise ValueError(f"{where} is listed twice.")
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(f"{where}: model_platform {entry.model_platform!r}; only "
                             "'tensorflow' is served.")
        if not entry.base_path:
            raise ValueError(f"{where} has no base_path.")
        try:
            policy = VersionPolicy.from_proto(entry.model_version_policy)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
        models[entry.name] = ServedModel(entry.name, path.parent / entry.base_path, policy,
                                         dict(entry.version_labels))
    return models


def write_model_config(
    base: str | Path, out: str | Path | None = None, **options
) -> tuple[Path, model_server_config_pb2.ModelServerConfig]:
    """Writes models.config (default BASE/models.config) atomically.

    Args:
        base: the base directory of exported models.
        out: the file to write.
        **options: see `build_model_config`.

    Returns:
        The written path and the config.
    """
    config = build_model_config(base, **options)
    out = Path(out) if out else Path(base, CONFIG_FILE)
    # Readable by a model server running as another user, whatever the umask.
    atomic.write_text(out, to_text(config), permissions=0o644)
    return out, config

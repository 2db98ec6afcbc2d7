"""Model versions under a base path, loaded, warmed and swapped the way TF Serving does.

    BASE/NAME/VERSION/saved_model.pb     one model per directory under BASE,
                                         versions are integer directory names

`ModelManager.poll()` lists the version directories of every model (other
names, such as an exporter's temporary `.export.tmp-*` directory, are
ignored), picks the versions the policy wants ("latest" N, "all", or
"specific" ones) and reconciles:

1. each wanted version that is not loaded is loaded with `tf.saved_model.load`
   and warmed up by replaying `assets.extra/tf_serving_warmup_requests`, while
   the versions already loaded keep serving; only then does it take traffic;
2. a version that fails to load or warm up is logged and reported in the model
   status (state END with the error); it is retried when its directory changes,
   and the previous version keeps serving;
3. versions no longer wanted are unloaded once a wanted version is available
   (or when their directories are gone): they stop taking new requests at
   once, and are released when the requests already running on them finish.

`start()` polls every `poll_seconds` on a background thread, like TF Serving's
`--file_system_poll_wait_seconds`.

With a `config_file` (TF Serving's `--model_config_file`, as `tfxfer
serving-config` writes it) the models, their base paths, version policies and
labels come from that file instead, re-read on every poll: a model added to it
is loaded, a model removed from it is unloaded. A file that no longer parses is
logged and the previous configuration keeps serving.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from tfxfer.serving.contract import check_model_name, list_versions, model_dirs
from tfxfer.serving.model_config import read_model_config
from tfxfer.serving.policy import VersionPolicy
from tfxfer.serving.server.errors import Code, ServingError, invalid_argument, not_found
from tfxfer.serving.server.predict import warm_up
from tfxfer.serving.server.servable import Servable, load_servable

logger = logging.getLogger(__name__)


class State(enum.Enum):
    """`tensorflow.serving.ModelVersionStatus.State` names."""

    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


@dataclass(frozen=True)
class VersionStatus:
    """The state of one version, as GetModelStatus reports it."""

    version: int
    state: State
    error_code: Code | None = None
    error_message: str = ""


def _fingerprint(path: Path) -> tuple:
    """Changes when a version directory is (re)written, so a failed load is retried."""
    def stamp(p: Path):
        try:
            stat = p.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    return tuple(stamp(path / part) for part in (
        ".", "saved_model.pb", "saved_model.pbtxt", "variables", "variables/variables.index"))


def _error_of(err: Exception) -> tuple[Code, str]:
    if isinstance(err, ServingError):
        return err.code, f"Warmup failed: {err.message}"
    if isinstance(err, tf.errors.OpError) and err.error_code in Code._value2member_map_:
        return Code(err.error_code), err.message
    if isinstance(err, FileNotFoundError):
        return Code.NOT_FOUND, str(err)
    return Code.UNKNOWN, f"{type(err).__name__}: {err}"


# ---------------------------------------------------------------- all models


@dataclass
class _Model:
    name: str
    path: Path
    servables: dict[int, Servable]
    statuses: dict[int, VersionStatus]
    failed: dict[int, tuple]  # version -> fingerprint of the directory that failed


def validate_model_name(name: str) -> None:
    """A request's model name, by the rule of `contract.check_model_name`.

    Raises:
        ServingError: INVALID_ARGUMENT for a name no model directory can have.
    """
    try:
        check_model_name(name)
    except ValueError as err:
        raise invalid_argument(str(err)) from err


class ModelManager:
    """Every model under a base path, its versions and their states.

    Args:
        base_path: the directory holding one subdirectory per model.
        policy: which versions to serve.
        version_labels: optional model -> {label: version} (TF Serving's version_labels).
        warmup: replay assets.extra/tf_serving_warmup_requests before serving a version.
        unload_timeout: seconds an unload waits for running requests before releasing.
        model_name: serve `base_path` itself as this one model (base_path/VERSION/), as
            TF Serving's --model_name with --model_base_path.
        config_file: a models.config listing the models (base_path is then unused).
    """

    def __init__(
        self,
        base_path: str | Path | None,
        policy: VersionPolicy | None = None,
        *,
        version_labels: Mapping[str, Mapping[str, int]] | None = None,
        warmup: bool = True,
        unload_timeout: float = 60.0,
        model_name: str | None = None,
        config_file: str | Path | None = None,
    ):
        if model_name is not None:
            check_model_name(model_name)
        self.model_name = model_name
        self.config_file = Path(config_file) if config_file is not None else None
        self._policies: dict[str, VersionPolicy] = {}
        self._config_text: str | None = None
        self._config_paths: dict[str, Path] = {}
        self.base_path = Path(base_path) if base_path is not None else None
        self.policy = policy or VersionPolicy()
        self.version_labels = {k: dict(v) for k, v in (version_labels or {}).items()}
        self.warmup = warmup
        self.unload_timeout = unload_timeout
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ requests

    @contextlib.contextmanager
    def handle(
        self, name: str, version: int | None = None, label: str | None = None
    ) -> Iterator[Servable]:
        """The servable a request should use, held until the `with` block ends.

        Raises:
            ServingError: invalid name (INVALID_ARGUMENT), unknown label
                (INVALID_ARGUMENT), no such model or version available (NOT_FOUND).
        """
        validate_model_name(name)
        if version is not None and label is not None:
            raise invalid_argument(f"Both model version ({version}) and model version label "
                                   f"({label}) cannot be supplied.")
        if label is not None:
            version = self._label_version(name, label)
        with self._lock:
            model = self._models.get(name)
            servables = model.servables if model else {}
            if version is None:
                servable = servables[max(servables)] if servables else None
            else:
                servable = servables.get(version)
            if servable is None:
                request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
                raise not_found(f"Servable not found for request: {request}")
            servable.acquire()
        try:
            yield servable
        finally:
            servable.release()

    def _label_version(self, name: str, label: str) -> int:
        labels = self.version_labels.get(name, {})
        if label not in labels:
            raise invalid_argument(f"Unrecognized servable version label: {label}")
        return labels[label]

    def status(self, name: str, version: int | None = None) -> list[VersionStatus]:
        """The states of a model's versions, newest first (GetModelStatus).

        Raises:
            ServingError: NOT_FOUND when the model or version was never seen.
        """
        validate_model_name(name)
        with self._lock:
            model = self._models.get(name)
            statuses = dict(model.statuses) if model else {}
        if version is not None:
            if version not in statuses:
                raise not_found(f"Could not find version {version} of model {name}")
            return [statuses[version]]
        if not statuses:
            raise not_found(f"Could not find any versions of model {name}")
        return [statuses[v] for v in sorted(statuses, reverse=True)]

    def check_version_labels(self) -> None:
        """Refuses a label naming a version that is not available, as TF Serving does.

        Raises:
            ValueError: naming the label, the version and the versions available.
        """
        for name, labels in self.version_labels.items():
            available = self.available_versions(name)
            for label, version in labels.items():
                if version not in available:
                    raise ValueError(
                        f"Version label {name}:{label}={version}: version {version} of model "
                        f"{name!r} is not available for inference (available: "
                        f"{', '.join(map(str, available)) or 'none'}). TF Serving refuses to "
                        "assign a label to a version that is not loaded.")

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def available_versions(self, name: str) -> list[int]:
        with self._lock:
            model = self._models.get(name)
            return sorted(model.servables) if model else []

    # ------------------------------------------------------------ polling

    def start(self, poll_seconds: float) -> None:
        """Polls once now, then every `poll_seconds` on a background thread."""
        self.poll()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll_loop, args=(poll_seconds,), name="tfxfer-model-poller", daemon=True)
        self._thread.start()

    def _poll_loop(self, poll_seconds: float) -> None:
        while not self._stop.wait(poll_seconds):
            try:
                self.poll()
            except Exception:  # the poller must outlive any error; the next poll retries
                logger.exception("Polling %s failed", self.base_path)

    def stop(self) -> None:
        """Stops polling and unloads every version."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._poll_lock:
            for model in list(self._models.values()):
                for version in list(model.servables):
                    self._unload(model, version)

    def poll(self) -> None:
        """One pass: discover models and versions, load what is wanted, unload the rest."""
        with self._poll_lock:
            found = self._discover()
            for name, path in found.items():
                with self._lock:
                    model = self._models.setdefault(name, _Model(name, path, {}, {}, {}))
                    model.path = path
                self._sync(model)
            for name in set(self.model_names()) - set(found):
                if self.config_file is not None:
                    self._remove(name)  # no longer in the config file
                else:
                    self._sync(self._models[name])  # its directory is gone: unload it

    def _remove(self, name: str) -> None:
        model = self._models[name]
        for version in list(model.servables):
            self._unload(model, version)
        with self._lock:
            del self._models[name]
        logger.info("Removed model %s (no longer in %s)", name, self.config_file)

    def _discover(self) -> dict[str, Path]:
        if self.config_file is not None:
            return self._read_config_file()
        if self.model_name is not None:
            return {self.model_name: self.base_path} if self.base_path.is_dir() else {}
        try:
            return model_dirs(self.base_path)
        except FileNotFoundError:
            logger.error("Base path %s does not exist or is not a directory", self.base_path)
            return {}

    def _read_config_file(self) -> dict[str, Path]:
        """The models of the config file; on a bad reload, those of the last good one.

        Raises:
            ValueError, FileNotFoundError: the first read fails.
        """
        try:
            text = self.config_file.read_text()
            if text != self._config_text:
                served = read_model_config(self.config_file)
                self._policies = {name: m.policy for name, m in served.items()}
                self.version_labels = {name: dict(m.version_labels)
                                       for name, m in served.items()}
                self._config_paths = {name: m.base_path for name, m in served.items()}
                if self._config_text is not None:
                    logger.info("Reloaded %s: models %s", self.config_file,
                                ", ".join(sorted(served)) or "(none)")
                self._config_text = text
        except (OSError, ValueError) as err:
            if self._config_text is None:
                raise
            logger.error("Cannot reload %s (the previous configuration keeps serving): %s",
                         self.config_file, err)
        return dict(self._config_paths)

    def _sync(self, model: _Model) -> None:
        policy = self._policies.get(model.name, self.policy)
        wanted = policy.select(list_versions(model.path))
        for version in wanted:
            if version not in model.servables and self._should_try(model, version):
                self._load(model, version)
        if any(v in model.servables for v in wanted) or not wanted:
            for version in [v for v in model.servables if v not in wanted]:
                self._unload(model, version)

    def _should_try(self, model: _Model, version: int) -> bool:
        failed = model.failed.get(version)
        return failed is None or failed != _fingerprint(model.path / str(version))

    def _set_status(self, model: _Model, status: VersionStatus) -> None:
        with self._lock:
            model.statuses[status.version] = status

    def _load(self, model: _Model, version: int) -> None:
        path = model.path / str(version)
        fingerprint = _fingerprint(path)
        self._set_status(model, VersionStatus(version, State.LOADING))
        logger.info("Loading %s version %d from %s", model.name, version, path)
        try:
            servable = load_servable(model.name, version, path)
            warmed = warm_up(servable) if self.warmup else 0
        except Exception as err:  # any file can be under BASE: report it, keep serving
            logger.debug("Load of %s failed", path, exc_info=True)
            code, message = _error_of(err)
            model.failed[version] = fingerprint
            self._set_status(model, VersionStatus(version, State.END, code, message))
            logger.error("Failed to load %s version %d from %s (the versions already loaded "
                         "keep serving): %s", model.name, version, path, message)
            return
        model.failed.pop(version, None)
        servable.warmup_records = warmed
        with self._lock:
            model.servables[version] = servable
            model.statuses[version] = VersionStatus(version, State.AVAILABLE)
        logger.info("%s version %d is available (%d warmup requests)", model.name, version,
                    warmed)

    def _unload(self, model: _Model, version: int) -> None:
        with self._lock:
            servable = model.servables.pop(version)
            model.statuses[version] = VersionStatus(version, State.UNLOADING)
        if not servable.wait_idle(self.unload_timeout):
            logger.warning("%s version %d still had requests after %.0f s; released anyway",
                           model.name, version, self.unload_timeout)
        self._set_status(model, VersionStatus(version, State.END))
        logger.info("Unloaded %s version %d", model.name, version)


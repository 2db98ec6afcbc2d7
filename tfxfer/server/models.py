"""Model versions under a base path, loaded, warmed and swapped the way TF Serving does.

    BASE/NAME/VERSION/saved_model.pb     one model per directory under BASE,
                                         versions are integer directory names

`ModelManager.poll()` lists the version directories of every model (other
names, such as an exporter's temporary `.tmp-export-*` directory, are
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
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfxfer.server.errors import Code, ServingError, invalid_argument, not_found
from tfxfer.server.predict import predict_request
from tfxfer.serving.op_libraries import import_op_libraries

logger = logging.getLogger(__name__)

POLICIES = ("latest", "all", "specific")
SERVE_TAG = "serve"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads at most this many warmup records
_VERSION_DIR = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model are served (TF Serving's model_version_policy).

    Attributes:
        kind: "latest" (the `num_versions` highest), "all", or "specific" (`versions`).
        num_versions: versions served under "latest".
        versions: the versions served under "specific".
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in POLICIES:
            raise ValueError(f"Unknown version policy {self.kind!r}. Valid policies: "
                             f"{', '.join(POLICIES)}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"num_versions must be >= 1. Received: {self.num_versions}")
        if self.kind == "specific" and not self.versions:
            raise ValueError("The 'specific' policy needs the versions to serve (--versions 1,2).")
        if self.kind != "specific" and self.versions:
            raise ValueError(f"Versions are given only with the 'specific' policy. Received: "
                             f"policy={self.kind!r}, versions={list(self.versions)}")

    def select(self, on_disk: Sequence[int]) -> list[int]:
        """The versions to serve, ascending, out of those on disk."""
        on_disk = sorted(on_disk)
        if self.kind == "latest":
            return on_disk[-self.num_versions:]
        if self.kind == "all":
            return on_disk
        return sorted(set(self.versions) & set(on_disk))


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


# ---------------------------------------------------------------- one version


class Servable:
    """One loaded model version: its SignatureDefs and signature functions.

    Requests hold it between `acquire()` and `release()`; `wait_idle()` lets an
    unload wait for them.
    """

    def __init__(self, name: str, version: int, path: Path, module, signature_defs, functions):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs: dict[str, meta_graph_pb2.SignatureDef] = signature_defs
        self.functions = functions
        self.warmup_records = 0  # warmup requests replayed before it served
        self._module = module  # keeps the variables and functions alive
        self._active = 0
        self._idle = threading.Condition()

    def acquire(self) -> None:
        with self._idle:
            self._active += 1

    def release(self) -> None:
        with self._idle:
            self._active -= 1
            if self._active == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no request holds this version; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)


def read_meta_graph(path: str | Path) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef tagged "serve" of a SavedModel (saved_model.pb or .pbtxt)."""
    path = Path(path)
    saved_model = saved_model_pb2.SavedModel()
    if (path / "saved_model.pb").is_file():
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    elif (path / "saved_model.pbtxt").is_file():
        text_format.Parse((path / "saved_model.pbtxt").read_text(), saved_model)
    else:
        raise FileNotFoundError(f"No saved_model.pb or saved_model.pbtxt in {path}")
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"{path} has no MetaGraph tagged {SERVE_TAG!r}")


def load_servable(name: str, version: int, path: str | Path) -> Servable:
    """Loads one version directory with `tf.saved_model.load`."""
    path = Path(path)
    signature_defs = dict(read_meta_graph(path).signature_def)
    import_op_libraries(path)  # e.g. TF Text's tokenizer ops of a transformer export
    module = tf.saved_model.load(str(path), tags=[SERVE_TAG])
    # SignatureDefs without a function (TF2's `__saved_model_init_op`) are listed in the
    # metadata, as TF Serving lists them, but cannot be run.
    functions = {key: module.signatures[key] for key in signature_defs
                 if key in module.signatures}
    return Servable(name, version, path, module, signature_defs, functions)


def warm_up(servable: Servable) -> int:
    """Replays the version's warmup PredictionLog records; returns how many ran.

    Raises:
        ServingError: a warmup request failed (the version is not loaded, as in TF Serving).
    """
    path = servable.path / WARMUP_FILE
    if not path.is_file():
        return 0
    count = 0
    for raw in tf.data.TFRecordDataset(str(path)).take(MAX_WARMUP_RECORDS):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        if log.WhichOneof("log_type") != "predict_log":
            logger.warning("%s: skipping a %s warmup record (only predict is served)",
                           path, log.WhichOneof("log_type"))
            continue
        predict_request(servable, log.predict_log.request)
        count += 1
    return count


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
    """A request's model name: a plain directory name, never a path.

    Raises:
        ServingError: INVALID_ARGUMENT for empty names, path separators, "." / ".."
            and hidden names.
    """
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise invalid_argument(
            f"Invalid model name {name!r}: a model name is the name of a directory under the "
            "base path (no path separators, no leading '.').")


class ModelManager:
    """Every model under a base path, its versions and their states.

    Args:
        base_path: the directory holding one subdirectory per model.
        policy: which versions to serve.
        version_labels: optional model -> {label: version} (TF Serving's version_labels).
        warmup: replay assets.extra/tf_serving_warmup_requests before serving a version.
        unload_timeout: seconds an unload waits for running requests before releasing.
    """

    def __init__(
        self,
        base_path: str | Path,
        policy: VersionPolicy | None = None,
        *,
        version_labels: Mapping[str, Mapping[str, int]] | None = None,
        warmup: bool = True,
        unload_timeout: float = 60.0,
    ):
        self.base_path = Path(base_path)
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
                self._sync(model)
            for name in set(self.model_names()) - set(found):
                self._sync(self._models[name])  # its directory is gone: unload it

    def _discover(self) -> dict[str, Path]:
        if not self.base_path.is_dir():
            logger.error("Base path %s does not exist or is not a directory", self.base_path)
            return {}
        return {p.name: p for p in sorted(self.base_path.iterdir())
                if p.is_dir() and not p.name.startswith(".")}

    def _versions_on_disk(self, model: _Model) -> list[int]:
        if not model.path.is_dir():
            return []
        return sorted(int(p.name) for p in model.path.iterdir()
                      if _VERSION_DIR.match(p.name) and p.is_dir())

    def _sync(self, model: _Model) -> None:
        wanted = self.policy.select(self._versions_on_disk(model))
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


"""`tfxfer serve`: the model manager, the REST API and the gRPC API, started and stopped together.

    with ModelServer(ServerConfig("saved_models", rest_port=0, grpc_port=0)) as server:
        url = f"http://127.0.0.1:{server.rest_port}/v1/models/flowers:predict"

The REST API (aiohttp) and the gRPC API (grpcio's asyncio server) share one
event loop on its own thread; each runs its requests on its own thread pool,
clients in turn (`FairScheduler`), and both read the same `ModelManager`.
Ports 0 pick free ports (see `rest_port` / `grpc_port` once started).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tfxfer.serving.contract import is_model_name, is_single_model_dir
from tfxfer.serving.policy import VersionPolicy
from tfxfer.serving.server.admission import AdmissionConfig, FairScheduler
from tfxfer.serving.server.batching import Batcher, BatchingConfig
from tfxfer.serving.server.grpc_service import build_grpc_server
from tfxfer.serving.server.manager import ModelManager
from tfxfer.serving.server.metrics import Metrics
from tfxfer.serving.server.predict import run_signature
from tfxfer.serving.server.rest import RestApi

logger = logging.getLogger(__name__)

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
# 2**25 elements: 128 MiB of float32 per input tensor. A declared shape beyond it is
# refused before anything is allocated (a 64-byte gRPC request can declare 3 GB).
DEFAULT_MAX_TENSOR_ELEMENTS = 1 << 25
DEFAULT_READ_TIMEOUT = 30.0
# A gRPC connection is renewed (GOAWAY) after this long: the bound on a call whose
# request is never completed (see grpc_service.connection_options).
DEFAULT_GRPC_MAX_CONNECTION_AGE = 120.0
LISTEN_BACKLOG = 2048


@dataclass
class ServerConfig:
    """How `tfxfer serve` runs.

    Attributes:
        base_path: directory with one subdirectory per model (BASE/NAME/VERSION), or one
            model's directory (BASE/NAME with NAME/VERSION/saved_model.pb), served as
            model NAME (or `model_name`).
        host: interface to bind; 127.0.0.1 keeps the server private to this machine.
        rest_port: REST API port (TF Serving's 8501); 0 picks a free port.
        grpc_port: gRPC API port (TF Serving's 8500); 0 picks a free port.
        poll_seconds: how often the base path is checked for new versions.
        policy: which versions to serve.
        version_labels: optional model -> {label: version}.
        max_request_bytes: larger request bodies are refused (413 / RESOURCE_EXHAUSTED).
        rest_threads: threads running REST requests (parse, infer, write JSON).
        grpc_threads: threads running gRPC requests.
        warmup: replay assets.extra/tf_serving_warmup_requests before a version serves.
        max_tensor_elements: an input tensor declaring more elements is refused
            (INVALID_ARGUMENT / 400) before it is allocated.
        read_timeout: seconds a client has to send a whole REST request (headers and
            body) and that an idle connection stays open; slower ones are closed. On
            gRPC: the handshake timeout, the idle timeout, and the grace after
            `grpc_max_connection_age`.
        grpc_max_connection_age: seconds after which a gRPC connection is renewed
            (GOAWAY; calls still open `read_timeout` later are cut); 0: never.
        admission: bounds on the requests one client, and all clients, may have in
            progress; a free worker goes to the waiting clients in turn.
        model_name: serve `base_path` as this single model (TF Serving's --model_name).
        model_config_file: a models.config listing the models, their base paths,
            policies and labels (TF Serving's --model_config_file), re-read every
            `poll_seconds`; `base_path` may then be None, and `version_labels` must be
            empty (the file's labels replace them on every read).
        batching: merge concurrent predict calls (TF Serving's --enable_batching);
            None: every request runs alone.
    """

    base_path: str | Path | None
    host: str = "127.0.0.1"
    rest_port: int = 8501
    grpc_port: int = 8500
    poll_seconds: float = 1.0
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    version_labels: dict[str, dict[str, int]] = field(default_factory=dict)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    rest_threads: int = 4
    grpc_threads: int = 4
    warmup: bool = True
    max_tensor_elements: int = DEFAULT_MAX_TENSOR_ELEMENTS
    read_timeout: float = DEFAULT_READ_TIMEOUT
    grpc_max_connection_age: float = DEFAULT_GRPC_MAX_CONNECTION_AGE
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    model_name: str | None = None
    model_config_file: str | Path | None = None
    batching: BatchingConfig | None = None

    def __post_init__(self):
        if self.poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be > 0. Received: {self.poll_seconds}")
        if self.max_request_bytes < 1:
            raise ValueError(f"max_request_bytes must be >= 1. Received: "
                             f"{self.max_request_bytes}")
        if self.read_timeout <= 0:
            raise ValueError(f"read_timeout must be > 0. Received: {self.read_timeout}")
        if self.grpc_max_connection_age < 0:
            raise ValueError(f"grpc_max_connection_age must be >= 0 (0: no limit). Received: "
                             f"{self.grpc_max_connection_age}")
        for name in ("rest_threads", "grpc_threads", "max_tensor_elements"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1. Received: {getattr(self, name)}")
        if self.model_config_file is not None:
            _validate_beside_config_file(self.version_labels, self.policy,
                                         self.model_config_file)
            if not Path(self.model_config_file).is_file():
                raise FileNotFoundError(f"Model config file not found: {self.model_config_file}")
            return
        if self.base_path is None:
            raise ValueError("Pass a base path of models or a model config file.")
        if not Path(self.base_path).is_dir():
            raise FileNotFoundError(f"Base path of the models not found: {self.base_path}")
        if self.model_name is None and is_single_model_dir(self.base_path):
            self.model_name = _single_model_name(Path(self.base_path))


def _validate_beside_config_file(labels: dict[str, dict[str, int]], policy: VersionPolicy,
                                 config_file: str | Path) -> None:
    """Refuses labels or a policy beside --model-config-file: the file would silently win.

    The file is re-read every poll and its version_labels and model_version_policy
    replace these, so a flag would be dropped without a word, and an edit of the file
    could not be told apart from it. As in TF Serving (which has labels only in the
    file), the file is the one place for them.
    """
    if policy != VersionPolicy():
        raise ValueError(
            f"A version policy ({policy.kind}) cannot be combined with --model-config-file "
            f"{config_file}: each model's model_version_policy in the file decides which "
            "versions it serves.")
    if not labels:
        return
    given = ", ".join(f"{model}:{label}={version}" for model, pairs in labels.items()
                      for label, version in pairs.items())
    model, pairs = next(iter(labels.items()))
    label, version = next(iter(pairs.items()))
    raise ValueError(
        f"--version-label ({given}) cannot be combined with --model-config-file "
        f"{config_file}: the file's labels replace them every time it is read. Put the "
        f"labels in the file, in the model_config of {model!r}: "
        f'version_labels {{ key: "{label}" value: {version} }}')


def _single_model_name(path: Path) -> str:
    name = path.resolve().name
    if not is_model_name(name):
        raise ValueError(
            f"{path} holds version directories (VERSION/saved_model.pb): it is one model's "
            f"directory, but {name!r} cannot name a model. Pass its parent directory, "
            "or --model-name NAME to serve it as model NAME.")
    logger.info("%s is a single model's directory (it holds versions): serving it as model "
                "%r", path, name)
    return name


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ModelServer:
    """The running endpoint: models loaded, REST and gRPC listening."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.manager = ModelManager(config.base_path, config.policy,
                                    version_labels=config.version_labels, warmup=config.warmup,
                                    model_name=config.model_name,
                                    config_file=config.model_config_file)
        self.metrics = Metrics()
        self._run = (Batcher(config.batching).run if config.batching is not None
                     else run_signature)
        self.rest_port: int | None = None
        self.grpc_port: int | None = None
        self.rest_scheduler: FairScheduler | None = None
        self.grpc_scheduler: FairScheduler | None = None
        self._executors: list[ThreadPoolExecutor] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._grpc = None
        self._stopped = threading.Event()

    def start(self) -> ModelServer:
        """Loads the models (first poll), then opens both ports."""
        config = self.config
        self.manager.start(config.poll_seconds)
        try:
            self.manager.check_version_labels()
            self._start_loop()
            self._start_rest()
            self._start_grpc()
        except BaseException:
            self.stop()
            raise
        if config.host not in ("127.0.0.1", "localhost", "::1"):
            logger.warning("Listening on %s: anyone who can reach this address can query the "
                           "models (there is no authentication or TLS).", config.host)
        logger.info("Serving %s: REST on http://%s, gRPC on %s",
                    config.model_config_file or config.base_path,
                    _address(config.host, self.rest_port), _address(config.host, self.grpc_port))
        return self

    def _start_loop(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever,
                                             name="tfxfer-serve-loop", daemon=True)
        self._loop_thread.start()

    def _on_loop(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _scheduler(self, threads: int, name: str) -> FairScheduler:
        executor = ThreadPoolExecutor(threads, thread_name_prefix=f"tfxfer-{name}")
        self._executors.append(executor)
        return FairScheduler(executor, threads, self.config.admission)

    def _start_rest(self) -> None:
        config = self.config
        sock = _bind(config.host, config.rest_port)
        self.rest_port = sock.getsockname()[1]
        self.rest_scheduler = self._scheduler(config.rest_threads, "rest")
        api = RestApi(self.manager, self.rest_scheduler, config.max_request_bytes,
                      max_tensor_elements=config.max_tensor_elements,
                      read_timeout=config.read_timeout, metrics=self.metrics,
                      run=self._run)
        # aiohttp closes a connection with no complete request after keepalive_timeout,
        # from the moment it opens: a client sending half a header is dropped then. After
        # an answer to an unread body (408, 413) it drains the rest for lingering_time.
        self._runner = web.AppRunner(api.build_app(), access_log=None,
                                     keepalive_timeout=config.read_timeout,
                                     lingering_time=min(10.0, config.read_timeout))

        async def open_site():
            await self._runner.setup()
            # aiohttp's default backlog (128) refuses bursts of new connections.
            await web.SockSite(self._runner, sock, backlog=LISTEN_BACKLOG).start()

        self._on_loop(open_site())

    def _start_grpc(self) -> None:
        config = self.config
        self.grpc_scheduler = self._scheduler(config.grpc_threads, "grpc")

        async def open_server():
            # grpc.aio binds the server to the loop it is created on.
            server, port = build_grpc_server(
                self.manager, _address(config.host, config.grpc_port),
                scheduler=self.grpc_scheduler, max_request_bytes=config.max_request_bytes,
                read_timeout=config.read_timeout,
                max_connection_age=config.grpc_max_connection_age,
                max_tensor_elements=config.max_tensor_elements, metrics=self.metrics,
                run=self._run)
            self._grpc = server
            await server.start()
            return port

        self.grpc_port = self._on_loop(open_server())

    def stop(self, grace: float = 5.0) -> None:
        """Stops taking requests, lets running ones finish (up to `grace` s), unloads."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._grpc is not None:
            self._on_loop(self._grpc.stop(grace))
        if self._runner is not None:
            self._on_loop(self._runner.cleanup())
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join()
            self._loop.close()
        for executor in self._executors:
            executor.shutdown(wait=True)
        self.manager.stop()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

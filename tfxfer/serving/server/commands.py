"""The `tfxfer serve` command: arguments and run (TensorFlow is imported only when it runs)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from tfxfer.serving.policy import VersionPolicy, add_policy_arguments
from tfxfer.serving.server.admission import (
    DEFAULT_MAX_CLIENT_REQUESTS,
    DEFAULT_MAX_QUEUED_REQUESTS,
    AdmissionConfig,
)
from tfxfer.serving.server.batching_config import BatchingConfig


def _label(text: str) -> tuple[str, str, int]:
    model, _, rest = text.partition(":")
    label, sep, version = rest.partition("=")
    if not (model and label and sep and version.isdigit()):
        raise argparse.ArgumentTypeError(f"expected MODEL:LABEL=VERSION, got {text!r}")
    return model, label, int(version)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base_dir", nargs="?",
                        help="directory of exported models: BASE/NAME/VERSION/, or one model's "
                             "directory NAME/VERSION/ (served as model NAME)")
    parser.add_argument("--model-config-file", default=None,
                        help="a models.config (as `tfxfer serving-config` writes) listing the "
                             "models to serve, re-read every --poll-seconds; replaces BASE_DIR")
    parser.add_argument("--model-name", default=None,
                        help="serve BASE_DIR as this one model (BASE_DIR/VERSION/), as TF "
                             "Serving's --model_name with --model_base_path")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--rest-port", type=int, default=8501,
                        help="REST API port (default 8501; 0 picks a free port)")
    parser.add_argument("--grpc-port", type=int, default=8500,
                        help="gRPC API port (default 8500; 0 picks a free port)")
    parser.add_argument("--poll-seconds", type=float, default=1.0,
                        help="how often BASE_DIR is checked for new versions (default 1)")
    add_policy_arguments(parser)
    parser.add_argument("--version-label", type=_label, action="append", default=[],
                        metavar="MODEL:LABEL=VERSION",
                        help="a version label for /labels/LABEL requests (repeatable); with "
                             "--model-config-file, labels go in the file instead")
    parser.add_argument("--max-request-bytes", type=int, default=16 * 1024 * 1024,
                        help="larger request bodies are refused (default 16 MiB)")
    parser.add_argument("--rest-threads", type=int, default=4,
                        help="threads running REST requests (default 4)")
    parser.add_argument("--grpc-threads", type=int, default=4,
                        help="threads running gRPC requests (default 4)")
    parser.add_argument("--max-tensor-elements", type=int, default=1 << 25,
                        help="input tensors declaring more elements are refused before "
                             "allocation (default 2**25)")
    parser.add_argument("--read-timeout", type=float, default=30.0,
                        help="seconds a client has to send a whole REST request; idle "
                             "connections (REST and gRPC) and unfinished gRPC handshakes "
                             "close after it too (default 30)")
    parser.add_argument("--grpc-max-connection-age", type=float, default=120.0,
                        help="seconds after which a gRPC connection is renewed (GOAWAY; its "
                             "calls get --read-timeout more to finish), which bounds a "
                             "half-sent call; 0: never (default 120)")
    parser.add_argument("--max-client-requests", type=int, default=DEFAULT_MAX_CLIENT_REQUESTS,
                        help="requests one client (peer IP address) may have in progress "
                             "at once, per API; more get 429 / RESOURCE_EXHAUSTED at once; "
                             f"0: no limit (default {DEFAULT_MAX_CLIENT_REQUESTS})")
    parser.add_argument("--max-queued-requests", type=int, default=DEFAULT_MAX_QUEUED_REQUESTS,
                        help="requests of all clients waiting for a worker, per API; more "
                             "get 503 / UNAVAILABLE; 0: no limit "
                             f"(default {DEFAULT_MAX_QUEUED_REQUESTS})")
    parser.add_argument("--enable-batching", action="store_true",
                        help="merge concurrent predict requests into one graph call")
    parser.add_argument("--max-batch-size", type=int, default=BatchingConfig.max_batch_size,
                        help="most rows in one batched call "
                             f"(default {BatchingConfig.max_batch_size})")
    parser.add_argument("--batch-timeout-micros", type=int,
                        default=BatchingConfig.batch_timeout_micros,
                        help="how long a batch waits for more requests "
                             f"(default {BatchingConfig.batch_timeout_micros})")
    parser.add_argument("--no-warmup", action="store_true",
                        help="do not replay assets.extra/tf_serving_warmup_requests")


def config_from_args(args: argparse.Namespace):
    """The ServerConfig the command line asks for."""
    from tfxfer.serving.server.app import ServerConfig

    labels: dict[str, dict[str, int]] = {}
    for model, label, version in args.version_label:
        labels.setdefault(model, {})[label] = version
    return ServerConfig(
        args.base_dir, host=args.host, rest_port=args.rest_port, grpc_port=args.grpc_port,
        poll_seconds=args.poll_seconds,
        policy=VersionPolicy.from_args(args),
        version_labels=labels, max_request_bytes=args.max_request_bytes,
        rest_threads=args.rest_threads, grpc_threads=args.grpc_threads,
        warmup=not args.no_warmup, max_tensor_elements=args.max_tensor_elements,
        read_timeout=args.read_timeout, grpc_max_connection_age=args.grpc_max_connection_age,
        admission=AdmissionConfig(args.max_client_requests, args.max_queued_requests),
        model_name=args.model_name,
        model_config_file=args.model_config_file,
        batching=(BatchingConfig(args.max_batch_size, args.batch_timeout_micros)
                  if args.enable_batching else None),
    )


def run_serve(args: argparse.Namespace) -> int:
    """Serves until SIGINT or SIGTERM, then stops cleanly."""
    from tfxfer.serving.server.app import ModelServer

    try:
        server = ModelServer(config_from_args(args)).start()
    except FileNotFoundError:
        raise
    except OSError as err:  # e.g. the port is taken
        logging.getLogger("tfxfer").error("tfxfer serve could not start: %s", err)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"tfxfer serve: REST http://{host}:{server.rest_port} gRPC {host}:{server.grpc_port} "
          f"models {', '.join(server.manager.model_names()) or '(none yet)'}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    print("tfxfer serve: stopping", flush=True)
    server.stop()
    return 0

"""`tfxfer serve`: a local endpoint speaking TensorFlow Serving's REST and gRPC APIs.

    app.py           ModelServer / ServerConfig: starts and stops everything
    servable.py      Servable: one loaded version, its SignatureDefs and functions
    manager.py       ModelManager: polls BASE/NAME/VERSION, loads, warms, swaps, unloads
    predict.py       runs a signature: input checks, TensorProto conversion, warm-up
    json_tensor.py   TF Serving's JSON tensor format (row / columnar, b64)
    responses.py     model status and metadata (protos and their JSON)
    rest.py          the REST API on aiohttp
    grpc_service.py  PredictionService and ModelService on grpcio's asyncio server
    admission.py     FairScheduler: per-client and queue bounds, clients served in turn
    errors.py        TensorFlow status codes -> HTTP statuses; declared-shape budget
    batching.py      Batcher: concurrent predict calls merged into one graph call
    batching_config.py  BatchingConfig: its settings (TensorFlow-free, for the command line)
    metrics.py       request counts and latencies for /monitoring/prometheus/metrics
    commands.py      the `tfxfer serve` command line

The public names are imported on first use, so `tfxfer --help` does not load TensorFlow.
"""

from tfxfer.utils.lazy import lazy_getattr

_PUBLIC = {
    "ModelServer": "tfxfer.serving.server.app",
    "ServerConfig": "tfxfer.serving.server.app",
    "AdmissionConfig": "tfxfer.serving.server.admission",
    "BatchingConfig": "tfxfer.serving.server.batching_config",
    "Code": "tfxfer.serving.server.errors",
    "ServingError": "tfxfer.serving.server.errors",
    "ModelManager": "tfxfer.serving.server.manager",
    "VersionPolicy": "tfxfer.serving.policy",
}

__all__ = sorted(_PUBLIC)
__getattr__ = lazy_getattr(__name__, _PUBLIC)

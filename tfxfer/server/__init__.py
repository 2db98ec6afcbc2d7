"""`tfxfer serve`: a local endpoint speaking TensorFlow Serving's REST and gRPC APIs.

    app.py           ModelServer / ServerConfig: starts and stops everything
    models.py        ModelManager: polls BASE/NAME/VERSION, loads, warms, swaps, unloads
    predict.py       runs a signature: input checks, TensorProto conversion
    json_tensor.py   TF Serving's JSON tensor format (row / columnar, b64)
    responses.py     model status and metadata (protos and their JSON)
    rest.py          the REST API on aiohttp
    grpc_service.py  PredictionService and ModelService on grpcio
    errors.py        TensorFlow status codes -> HTTP statuses
"""

from tfxfer.server.app import ModelServer, ServerConfig
from tfxfer.server.errors import Code, ServingError
from tfxfer.server.models import ModelManager, VersionPolicy

__all__ = ["Code", "ModelManager", "ModelServer", "ServerConfig", "ServingError",
           "VersionPolicy"]

"""TF Serving's gRPC API (port 8500): PredictionService and ModelService on grpcio.

    PredictionService.Predict           PredictRequest -> PredictResponse
    PredictionService.GetModelMetadata  signature_def metadata, packed in Any
    ModelService.GetModelStatus         version states

Classify, Regress, MultiInference and HandleReloadConfigRequest answer
UNIMPLEMENTED (grpcio's default for a servicer method not overridden).
Errors carry TF Serving's status codes; a request larger than
`max_request_bytes` is refused by grpcio with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tfxfer.serving.server.errors import ServingError
from tfxfer.serving.server.manager import ModelManager
from tfxfer.serving.server.metrics import Metrics
from tfxfer.serving.server.predict import predict_request, run_signature
from tfxfer.serving.server.responses import model_metadata, model_status

logger = logging.getLogger(__name__)


def _spec(model_spec) -> tuple[str, int | None, str | None]:
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return model_spec.name, version, label


def _answer(context: grpc.ServicerContext, work: Callable[[], Any]) -> Any:
    try:
        return work()
    except ServingError as err:
        context.abort(grpc.StatusCode[err.code.name], err.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata over the models of a `ModelManager`."""

    def __init__(self, manager: ModelManager, max_tensor_elements: int | None = None,
                 metrics: Metrics | None = None, run: Callable = run_signature):
        self.manager = manager
        self.run = run
        self.max_tensor_elements = max_tensor_elements
        self.metrics = metrics

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        start, served = time.monotonic(), {}
        name, version, label = _spec(request.model_spec)

        def work():
            with self.manager.handle(name, version, label) as servable:
                served["version"] = servable.version
                return predict_request(servable, request, self.max_tensor_elements, self.run)

        status = "OK"
        try:
            return work()
        except ServingError as err:
            status = err.code.name
            context.abort(grpc.StatusCode[err.code.name], err.message)
        finally:
            if self.metrics is not None:
                self.metrics.observe(name, served.get("version"), "GRPC", status,
                                     time.monotonic() - start)

    def GetModelMetadata(self, request, context):  # noqa: N802
        name, version, label = _spec(request.model_spec)
        return _answer(context, lambda: model_metadata(
            self.manager, name, version, label, tuple(request.metadata_field)))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus over the models of a `ModelManager`."""

    def __init__(self, manager: ModelManager):
        self.manager = manager

    def GetModelStatus(self, request, context):  # noqa: N802
        name, version, label = _spec(request.model_spec)
        return _answer(context, lambda: model_status(self.manager, name, version, label))


def build_grpc_server(
    manager: ModelManager, address: str, *, max_request_bytes: int, threads: int,
    max_tensor_elements: int | None = None, metrics: Metrics | None = None,
    run: Callable = run_signature,
) -> tuple[grpc.Server, int]:
    """A started-to-be gRPC server bound to `address` ("HOST:PORT"; port 0 picks one).

    Returns:
        The server (call `.start()`) and the port it is bound to.

    Raises:
        OSError: the address could not be bound.
    """
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tfxfer-grpc"),
        options=[("grpc.max_receive_message_length", max_request_bytes),
                 ("grpc.max_send_message_length", -1),
                 ("grpc.so_reuseport", 0)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, max_tensor_elements, metrics, run), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(manager), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:
        raise OSError(f"Cannot bind the gRPC server to {address}: {err}") from err
    if port == 0:
        raise OSError(f"Cannot bind the gRPC server to {address}")
    return server, port

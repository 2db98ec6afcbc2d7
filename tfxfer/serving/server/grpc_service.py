"""TF Serving's gRPC API (port 8500): PredictionService and ModelService on grpcio.

    PredictionService.Predict           PredictRequest -> PredictResponse
    PredictionService.GetModelMetadata  signature_def metadata, packed in Any
    ModelService.GetModelStatus         version states

Classify, Regress, MultiInference and HandleReloadConfigRequest answer
UNIMPLEMENTED (grpcio's default for a servicer method not overridden).
Errors carry TF Serving's status codes; a request larger than
`max_request_bytes` is refused by grpcio with RESOURCE_EXHAUSTED.

The servicers run on grpcio's asyncio server, on the same event loop as the
REST API: a call waiting for its turn in the `FairScheduler` costs no thread,
and only the work itself runs on the gRPC thread pool. Connections are bounded
in time as `--read-timeout` bounds REST ones (see `connection_options`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tfxfer.serving.server.admission import FairScheduler, client_identity
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


async def _answer(context: grpc.aio.ServicerContext, scheduler: FairScheduler,
                  work: Callable[[], Any]) -> Any:
    try:
        return await scheduler.submit(client_identity(context.peer()), work)
    except ServingError as err:
        await context.abort(grpc.StatusCode[err.code.name], err.message)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata over the models of a `ModelManager`."""

    def __init__(self, manager: ModelManager, scheduler: FairScheduler,
                 max_tensor_elements: int | None = None, metrics: Metrics | None = None,
                 run: Callable = run_signature):
        self.manager = manager
        self.scheduler = scheduler
        self.run = run
        self.max_tensor_elements = max_tensor_elements
        self.metrics = metrics

    async def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        start, served = time.monotonic(), {}
        name, version, label = _spec(request.model_spec)

        def work():
            with self.manager.handle(name, version, label) as servable:
                served["version"] = servable.version
                return predict_request(servable, request, self.max_tensor_elements, self.run)

        status = "OK"
        try:
            return await self.scheduler.submit(client_identity(context.peer()), work)
        except ServingError as err:
            status = err.code.name
            await context.abort(grpc.StatusCode[err.code.name], err.message)
        except asyncio.CancelledError:  # the client left or its deadline passed
            status = "CANCELLED"
            raise
        finally:
            if self.metrics is not None:
                self.metrics.observe(name, served.get("version"), "GRPC", status,
                                     time.monotonic() - start)

    async def GetModelMetadata(self, request, context):  # noqa: N802
        name, version, label = _spec(request.model_spec)
        return await _answer(context, self.scheduler, lambda: model_metadata(
            self.manager, name, version, label, tuple(request.metadata_field)))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus over the models of a `ModelManager`."""

    def __init__(self, manager: ModelManager, scheduler: FairScheduler):
        self.manager = manager
        self.scheduler = scheduler

    async def GetModelStatus(self, request, context):  # noqa: N802
        name, version, label = _spec(request.model_spec)
        return await _answer(context, self.scheduler,
                             lambda: model_status(self.manager, name, version, label))


def connection_options(read_timeout: float, max_connection_age: float) -> list[tuple]:
    """grpcio's channel arguments that keep a slow or silent client from holding a connection.

    A connection that has not finished the HTTP/2 handshake after `read_timeout`
    seconds, or that has had no call for that long, is closed. A call whose request
    is never completed never reaches a handler (grpcio reads the whole message
    first), so only the connection's age bounds it: after `max_connection_age`
    seconds (grpcio adds +-10% jitter) the server sends GOAWAY, clients open a new
    connection for their next calls (grpcio's channels do this on their own), and
    calls still open after `read_timeout` more seconds are cut. 0 turns the age
    limit off.
    """
    options = [("grpc.server_handshake_timeout_ms", _ms(read_timeout)),
               ("grpc.max_connection_idle_ms", _ms(read_timeout))]
    if max_connection_age:
        options += [("grpc.max_connection_age_ms", _ms(max_connection_age)),
                    ("grpc.max_connection_age_grace_ms", _ms(read_timeout))]
    return options


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def build_grpc_server(
    manager: ModelManager, address: str, *, scheduler: FairScheduler, max_request_bytes: int,
    read_timeout: float, max_connection_age: float, max_tensor_elements: int | None = None,
    metrics: Metrics | None = None, run: Callable = run_signature,
) -> tuple[grpc.aio.Server, int]:
    """An asyncio gRPC server bound to `address` ("HOST:PORT"; port 0 picks one).

    Call it on the event loop that will run the server (and `scheduler`).

    Returns:
        The server (`await server.start()`) and the port it is bound to.

    Raises:
        OSError: the address could not be bound.
    """
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_request_bytes),
        ("grpc.max_send_message_length", -1),
        ("grpc.so_reuseport", 0),
        *connection_options(read_timeout, max_connection_age),
    ])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(manager, scheduler, max_tensor_elements, metrics, run), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(manager, scheduler), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as err:
        raise OSError(f"Cannot bind the gRPC server to {address}: {err}") from err
    if port == 0:
        raise OSError(f"Cannot bind the gRPC server to {address}")
    return server, port

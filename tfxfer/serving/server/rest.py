"""TF Serving's REST API (port 8501) on aiohttp.

    GET  /v1/models/NAME[/versions/V | /labels/L]             model status
    GET  /v1/models/NAME[/versions/V | /labels/L]/metadata    signature defs
    POST /v1/models/NAME[/versions/V | /labels/L]:predict     row or columnar predict

Paths are matched with TF Serving's own patterns (http_rest_api_util.cc) on
the raw path, then the model name and label are percent-decoded. Every error
is `{"error": message}` with TF Serving's HTTP status for its code: 400 for
bad input (including a path under /v1/ that matches no API: "Malformed
request"), 404 for an unknown model or version, 413 for a body over the size
limit, 501 for classify/regress, 404 for paths outside /v1/.

The event loop only reads bodies and writes answers; JSON parsing, inference
and JSON writing run on a thread pool, handed out fairly across clients by a
`FairScheduler` (admission.py): a client over its bound of requests in
progress gets 429, a full queue 503, both with `Retry-After: 1`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from tfxfer.serving.contract import DEFAULT_SIGNATURE
from tfxfer.serving.server import metrics as metrics_lib
from tfxfer.serving.server.admission import FairScheduler, client_identity
from tfxfer.serving.server.errors import Code, ServingError, invalid_argument, too_large
from tfxfer.serving.server.json_tensor import (
    inputs_from_json,
    outputs_to_json,
    parse_json_body,
    signature_name_of,
)
from tfxfer.serving.server.manager import ModelManager
from tfxfer.serving.server.predict import input_dtypes, run_signature
from tfxfer.serving.server.responses import metadata_json, model_metadata, model_status, status_json

logger = logging.getLogger(__name__)

_VERSION_OR_LABEL = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
_PREDICT_PATH = re.compile(rf"/v1/models/([^/:]+){_VERSION_OR_LABEL}:(classify|regress|predict)",
                           re.IGNORECASE)
_STATUS_PATH = re.compile(rf"/v1/models(?:/([^/:]+))?{_VERSION_OR_LABEL}(?:/(metadata))?",
                          re.IGNORECASE)
_API_PATH = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Route:
    """What a request path asks for.

    Attributes:
        action: "predict", "classify", "regress", "status" or "metadata".
        model: the (percent-decoded) model name.
        version: the version in the path, if any.
        label: the version label in the path, if any.
    """

    action: str
    model: str
    version: int | None = None
    label: str | None = None


def _version(text: str) -> int | None:
    if not text:
        return None
    version = int(text)
    if version >= 1 << 63:
        raise invalid_argument(f"Failed to convert version: {text} to numeric.")
    return version


def parse_route(method: str, raw_path: str) -> Route:
    """Matches a request against TF Serving's REST paths.

    Args:
        method: the HTTP method.
        raw_path: the path as sent (percent-encoded, without the query string).

    Raises:
        ServingError: NOT_FOUND outside /v1/, INVALID_ARGUMENT for anything else
            that is not one of the APIs.
    """
    if not _API_PATH.fullmatch(raw_path):
        raise ServingError(Code.NOT_FOUND, f"Not found: {method} {raw_path}. The API is under "
                                           "/v1/models/NAME.")
    match = None
    if method == "POST":
        match = _PREDICT_PATH.fullmatch(raw_path)
        if match:
            name, version, label, action = match.groups()
    elif method == "GET":
        match = _STATUS_PATH.fullmatch(raw_path)
        if match:
            name, version, label, subresource = match.groups()
            action = "metadata" if subresource else "status"
            if not name:
                raise invalid_argument("Missing model name in request.")
    if match is None:
        raise invalid_argument(f"Malformed request: {method} {raw_path}")
    return Route(action.lower(), unquote(name), _version(version),
                 unquote(label) if label else None)


class RestApi:
    """The request handlers, bound to a model manager and a fair inference thread pool.

    Args:
        manager: the models served.
        scheduler: admits requests and runs parsing, inference and JSON writing off
            the event loop, clients in turn.
        max_request_bytes: bodies larger than this get 413.
        max_tensor_elements: input tensors of more elements get 400 (None: no limit).
        read_timeout: seconds to receive a body; a slower client gets 408.
        metrics: where predict requests are counted; also served at
            /monitoring/prometheus/metrics (None: neither).
        run: runs a signature (`run_signature`, or a `Batcher.run`).
    """

    def __init__(self, manager: ModelManager, scheduler: FairScheduler, max_request_bytes: int,
                 *, max_tensor_elements: int | None = None, read_timeout: float | None = None,
                 metrics: metrics_lib.Metrics | None = None, run: Callable = run_signature):
        self.manager = manager
        self.scheduler = scheduler
        self.max_request_bytes = max_request_bytes
        self.max_tensor_elements = max_tensor_elements
        self.read_timeout = read_timeout
        self.metrics = metrics
        self.run = run

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_request_bytes)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if (self.metrics is not None and request.method == "GET"
                and request.rel_url.raw_path == metrics_lib.PATH):
            return web.Response(body=self.metrics.render().encode(),
                                headers={"Content-Type": metrics_lib.CONTENT_TYPE})
        start, served, route = time.monotonic(), {}, None
        status = "OK"
        try:
            route = parse_route(request.method, request.rel_url.raw_path)
            client = client_identity(request.remote)
            with self.scheduler.admitted(client):
                body = await self._read_body(request) if request.method == "POST" else b""
                answer = await self.scheduler.run(
                    client, functools.partial(self.answer, route, body, served),
                    abandoned=lambda: request.transport is None
                    or request.transport.is_closing())
            return web.Response(body=answer, content_type="application/json")
        except ServingError as err:
            status = err.code.name
            response = _error_response(err)
            if err.http_status in (408, 413):  # the body was not read: the stream is unusable
                response.force_close()
            elif err.http_status in (429, 503):  # refused: aiohttp drains the unread body
                response.headers["Retry-After"] = "1"
            return response
        except ConnectionError as err:  # the client went away: nobody to answer
            status = Code.CANCELLED.name
            logger.info("Client disconnected during %s %s: %s", request.method, request.path,
                        err)
            return _error_response(ServingError(Code.CANCELLED, "Client disconnected"))
        except Exception as err:  # a bug: answer 500 with the reason and keep serving
            status = Code.INTERNAL.name
            logger.exception("Internal error on %s %s", request.method, request.path)
            return _error_response(ServingError(Code.INTERNAL, f"Internal error: {err!r}"))
        finally:
            if self.metrics is not None and route is not None and route.action == "predict":
                self.metrics.observe(route.model, served.get("version"), "REST", status,
                                     time.monotonic() - start)

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            raise too_large(request.content_length, limit)
        try:
            return await asyncio.wait_for(request.read(), self.read_timeout)
        except web.HTTPRequestEntityTooLarge as err:
            raise too_large(None, limit) from err
        except TimeoutError as err:
            raise ServingError(Code.DEADLINE_EXCEEDED, f"Request body not received within "
                               f"{self.read_timeout:g} s (tfxfer serve --read-timeout).",
                               http_status=408) from err

    def answer(self, route: Route, body: bytes, served: dict | None = None) -> bytes:
        """The JSON body answering `route` (runs on the thread pool).

        Args:
            served: if given, receives "version": the version that answered a predict.
        """
        if route.action == "predict":
            result = self.predict(route, body, served)
        elif route.action == "status":
            result = status_json(model_status(self.manager, route.model, route.version,
                                              route.label))
        elif route.action == "metadata":
            result = metadata_json(model_metadata(self.manager, route.model, route.version,
                                                  route.label))
        else:
            raise ServingError(Code.UNIMPLEMENTED, f"tfxfer serve answers predict requests; "
                                                   f"{route.action} needs TF Serving.")
        return json.dumps(result).encode("utf-8")

    def predict(self, route: Route, body: bytes, served: dict | None = None) -> dict[str, Any]:
        document = parse_json_body(body)
        signature_name = signature_name_of(document)
        with self.manager.handle(route.model, route.version, route.label) as servable:
            if served is not None:
                served["version"] = servable.version
            try:
                dtypes = input_dtypes(servable, signature_name)
            except ServingError as err:
                raise invalid_argument(
                    f'Serving signature name: "{signature_name or DEFAULT_SIGNATURE}" not found '
                    f"in signature def. Model {servable.name} version {servable.version} has: "
                    f"{', '.join(sorted(servable.functions))}.") from err
            inputs, layout = inputs_from_json(document, dtypes, self.max_tensor_elements)
            outputs = self.run(servable, signature_name, inputs)
        return outputs_to_json(outputs, layout)


def _error_response(err: ServingError) -> web.Response:
    return web.Response(status=err.http_status, content_type="application/json",
                        body=json.dumps({"error": err.message}).encode("utf-8"))

"""Errors with TensorFlow's status codes, as TF Serving reports them on REST and gRPC.

TF Serving returns a `tensorflow::Status` from every handler. Its REST server
maps the code to an HTTP status (model_servers/http_server.cc) and writes
`{"error": message}`; its gRPC server passes the code through unchanged (TF's
error codes are gRPC's). `ServingError` carries such a code and a message.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """`tensorflow.error.Code` (the same numbers as `grpc.StatusCode`)."""

    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# TF Serving's ToHTTPStatusCode, except RESOURCE_EXHAUSTED: TF Serving answers 429
# for it; a request over the size limit gets 413 here (see `too_large`).
HTTP_STATUS = {
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A request failed with a TensorFlow status code and a message for the client.

    Attributes:
        code: the status code.
        message: what went wrong, in words the client can act on.
        http_status: the HTTP status the REST API answers with.
    """

    def __init__(self, code: Code, message: str, http_status: int | None = None):
        super().__init__(message)
        self.code = Code(code)
        self.message = message
        self.http_status = http_status or HTTP_STATUS.get(self.code, 500)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def invalid_argument(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)


def too_large(size: int | None, limit: int) -> ServingError:
    """A request body over `--max-request-bytes`: HTTP 413, gRPC RESOURCE_EXHAUSTED."""
    received = f"{size} bytes" if size is not None else "more"
    return ServingError(
        Code.RESOURCE_EXHAUSTED,
        f"Request body too large: {received}; the limit is {limit} bytes "
        "(tfxfer serve --max-request-bytes).",
        http_status=413,
    )


def check_tensor_shape(what: str, shape: list[int], max_elements: int | None) -> None:
    """Refuses a declared shape before anything of that shape is allocated.

    Args:
        what: the tensor, for the message ("Input 'x'").
        shape: the dimensions as declared by the request.
        max_elements: the largest element count accepted (None: no limit).

    Raises:
        ServingError: INVALID_ARGUMENT for a negative dimension or more elements than
            `max_elements`.
    """
    if any(d < 0 for d in shape):
        raise invalid_argument(f"{what} has a negative dimension in its shape {shape}.")
    count = 1
    for d in shape:
        count *= d  # Python ints: [2**40, 2**40] cannot overflow into a small number
    if max_elements is not None and count > max_elements:
        raise invalid_argument(
            f"{what} declares shape {shape}: {count} elements; the server accepts at "
            f"most {max_elements} per tensor (tfxfer serve --max-tensor-elements).")

"""GetModelStatus and GetModelMetadata answers, shared by the REST and gRPC APIs.

Both are built as the tensorflow-serving-api protos; the REST API prints them
with protobuf's JSON mapping as TF Serving does (http_rest_api_util.cc):
model status with its json_name fields, metadata with proto field names and
`signature_def` unpacked from its `Any` into a SignatureDefMap.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
)

from tfxfer.serving.server.errors import invalid_argument
from tfxfer.serving.server.manager import ModelManager

SIGNATURE_DEF = "signature_def"


def model_status(
    manager: ModelManager, name: str, version: int | None = None, label: str | None = None
) -> get_model_status_pb2.GetModelStatusResponse:
    """Every known version of a model (or one), newest first, with state and status."""
    if label is not None:
        if version is not None:
            raise invalid_argument(f"Both model version ({version}) and model version label "
                                   f"({label}) cannot be supplied.")
        with manager.handle(name, label=label) as servable:
            version = servable.version
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in manager.status(name, version):
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state.value)
        entry.status.error_code = int(status.error_code or 0)
        entry.status.error_message = status.error_message
    return response


def model_metadata(
    manager: ModelManager,
    name: str,
    version: int | None = None,
    label: str | None = None,
    fields: tuple[str, ...] = (SIGNATURE_DEF,),
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """The SignatureDefs of the served version, packed in `Any` as TF Serving does."""
    if not fields:
        raise invalid_argument("GetModelMetadataRequest must specify at least one "
                               "metadata_field")
    for field in fields:
        if field != SIGNATURE_DEF:
            raise invalid_argument(f"Metadata field {field} is not supported")
    with manager.handle(name, version, label) as servable:
        signature_defs = get_model_metadata_pb2.SignatureDefMap(
            signature_def=servable.signature_defs)
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=model_pb2.ModelSpec(name=servable.name))
        response.model_spec.version.value = servable.version
    response.metadata[SIGNATURE_DEF].Pack(signature_defs)
    return response


def status_json(response: get_model_status_pb2.GetModelStatusResponse) -> dict[str, Any]:
    return json_format.MessageToDict(response, always_print_fields_with_no_presence=True)


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> dict[str, Any]:
    """{"model_spec": ..., "metadata": {"signature_def": {"signature_def": {...}}}}."""
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    if not response.metadata[SIGNATURE_DEF].Unpack(signature_defs):
        raise ValueError("metadata['signature_def'] is not a SignatureDefMap")
    options = {"preserving_proto_field_name": True, "always_print_fields_with_no_presence": True}
    return {
        "model_spec": json_format.MessageToDict(response.model_spec, **options),
        "metadata": {SIGNATURE_DEF: json_format.MessageToDict(signature_defs, **options)},
    }


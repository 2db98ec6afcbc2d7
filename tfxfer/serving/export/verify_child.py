"""Runs exported SavedModels in a fresh interpreter that imports only TensorFlow.

Started by `tfxfer.serving.export.verify` as `python -I verify_child.py REQUEST RESPONSE`
(isolated mode: the script's folder is not on sys.path, so nothing of tfxfer can
be imported by accident). It does what TF Serving does with an export: load the
SavedModel with no Keras or tfxfer code around, call a signature on encoded
inputs, and report the signatures and outputs as JSON. It must import nothing
but TensorFlow, the standard library and the op libraries the request names
(`tensorflow_text` for transformer tokenizers: a plain TF process needs it too).

REQUEST:  {"imports": [MODULE, ...],
           "cases": [{"dir": PATH, "signature": NAME, "inputs": [{"b64": ...} | "text"]}]}
RESPONSE: {"cases": [{"signatures": {...}, "outputs": {NAME: nested list}} | {"error": ...}],
           "tfxfer_imported": bool}
"""

import base64
import importlib
import json
import sys

import tensorflow as tf


def _spec(spec):
    shape = None if spec.shape.rank is None else [-1 if d is None else d for d in spec.shape]
    return {"dtype": spec.dtype.name, "shape": shape}


def _signatures(loaded):
    described = {}
    for name, function in loaded.signatures.items():
        _, kwargs = function.structured_input_signature
        described[name] = {
            "inputs": {key: _spec(spec) for key, spec in kwargs.items()},
            "outputs": {key: _spec(spec) for key, spec in function.structured_outputs.items()},
        }
    return described


def _decode_strings(data):
    if isinstance(data, list):
        return [_decode_strings(item) for item in data]
    return data.decode("utf-8")


def _to_json(value):
    data = value.numpy().tolist()
    return _decode_strings(data) if value.dtype == tf.string else data


def _decode_input(item):
    if isinstance(item, dict):
        return base64.b64decode(item["b64"])
    return item.encode("utf-8")


def _run_case(case):
    loaded = tf.saved_model.load(case["dir"])
    function = loaded.signatures[case["signature"]]
    (key,) = function.structured_input_signature[1]
    inputs = tf.constant([_decode_input(item) for item in case["inputs"]], dtype=tf.string)
    outputs = function(**{key: inputs})
    return {
        "signatures": _signatures(loaded),
        "outputs": {name: _to_json(value) for name, value in outputs.items()},
    }


def main(request_path, response_path):
    with open(request_path) as f:
        request = json.load(f)
    for module in request.get("imports", []):  # op libraries register their ops on import
        importlib.import_module(module)
    results = []
    for case in request["cases"]:
        try:
            results.append(_run_case(case))
        except Exception as err:  # any failure is reported to the parent, which raises
            results.append({"error": f"{type(err).__name__}: {err}"})
    response = {"cases": results, "tfxfer_imported": "tfxfer" in sys.modules}
    with open(response_path, "w") as f:
        json.dump(response, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""One loaded model version: its SignatureDefs, its signature functions, its requests.

A version directory is loaded with `tf.saved_model.load` (tag "serve"); its
SignatureDefs are read from saved_model.pb (or .pbtxt) so the metadata lists
them as TF Serving does, including those without a function.
"""

from __future__ import annotations

import threading
from pathlib import Path

import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from tfxfer.serving.contract import SAVED_MODEL_FILES, SERVE_TAG
from tfxfer.serving.op_libraries import import_op_libraries


class Servable:
    """One loaded model version: its SignatureDefs and signature functions.

    Requests hold it between `acquire()` and `release()`; `wait_idle()` lets an
    unload wait for them.
    """

    def __init__(self, name: str, version: int, path: Path, module, signature_defs, functions):
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs: dict[str, meta_graph_pb2.SignatureDef] = signature_defs
        self.functions = functions
        self.warmup_records = 0  # warmup requests replayed before it served
        self._module = module  # keeps the variables and functions alive
        self._active = 0
        self._idle = threading.Condition()

    def acquire(self) -> None:
        with self._idle:
            self._active += 1

    def release(self) -> None:
        with self._idle:
            self._active -= 1
            if self._active == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Waits until no request holds this version; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)


def read_meta_graph(path: str | Path) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef tagged "serve" of a SavedModel (saved_model.pb or .pbtxt)."""
    path = Path(path)
    binary, text = (path / name for name in SAVED_MODEL_FILES)
    saved_model = saved_model_pb2.SavedModel()
    if binary.is_file():
        saved_model.ParseFromString(binary.read_bytes())
    elif text.is_file():
        text_format.Parse(text.read_text(), saved_model)
    else:
        raise FileNotFoundError(f"No {' or '.join(SAVED_MODEL_FILES)} in {path}")
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ValueError(f"{path} has no MetaGraph tagged {SERVE_TAG!r}")


def load_servable(name: str, version: int, path: str | Path) -> Servable:
    """Loads one version directory with `tf.saved_model.load`."""
    path = Path(path)
    signature_defs = dict(read_meta_graph(path).signature_def)
    import_op_libraries(path)  # e.g. TF Text's tokenizer ops of a transformer export
    module = tf.saved_model.load(str(path), tags=[SERVE_TAG])
    # SignatureDefs without a function (TF2's `__saved_model_init_op`) are listed in the
    # metadata, as TF Serving lists them, but cannot be run.
    functions = {key: module.signatures[key] for key in signature_defs
                 if key in module.signatures}
    return Servable(name, version, path, module, signature_defs, functions)

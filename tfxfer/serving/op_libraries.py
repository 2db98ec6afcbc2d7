"""Op libraries an export needs besides core TensorFlow (TF Text for transformer tokenizers).

A transformer text model tokenizes inside its graph with TF Text ops
(`FastWordpieceTokenizeWithOffsets`, `RegexSplitWithOffsets`, ...). They are not part of
core TensorFlow: a process registers them by importing `tensorflow_text` before it loads
the SavedModel, or fails with "Op type not registered". `import_op_libraries` does that
for every process of tfxfer that loads an export (verification child, `tfxfer serve`,
`tfxfer predict --local`), and names the missing package when it is not installed.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfxfer.utils import keras_compat

# Python modules that register non-core ops on import, with their pip package.
OP_LIBRARIES = {"tensorflow_text": "tensorflow-text"}


class OpLibraryError(RuntimeError):
    """An export uses ops that no importable op library of this process provides."""


def custom_ops(saved_model_dir: str | Path) -> set[str]:
    """Op types in a SavedModel that core TensorFlow does not define (e.g. TF Text's)."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(Path(saved_model_dir, "saved_model.pb").read_bytes())
    ops, functions = set(), set()
    for meta_graph in saved.meta_graphs:
        library = meta_graph.graph_def.library.function
        functions.update(f.signature.name for f in library)
        ops.update(node.op for node in meta_graph.graph_def.node)
        ops.update(node.op for f in library for node in f.node_def)
    return {op for op in ops - functions if not hasattr(tf.raw_ops, op)}


def import_op_libraries(saved_model_dir: str | Path) -> list[str]:
    """Imports the op libraries the export at `saved_model_dir` needs; returns their names.

    Raises:
        OpLibraryError: a needed library is not installed, or some ops stay unknown.
    """
    ops = custom_ops(saved_model_dir)
    if not ops:
        return []
    imported = []
    for module, package in OP_LIBRARIES.items():
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise OpLibraryError(
                f"{saved_model_dir} uses ops outside core TensorFlow ({', '.join(sorted(ops))}); "
                f"loading it needs {module} (pip install {package})."
            ) from err
        imported.append(module)
    unknown = sorted(op for op in ops if not keras_compat.op_is_registered(op))
    if unknown:
        raise OpLibraryError(
            f"{saved_model_dir} uses ops that neither TensorFlow nor {', '.join(imported)} "
            f"defines: {', '.join(unknown)}."
        )
    return imported

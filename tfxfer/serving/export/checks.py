"""Checks of a written SavedModel before it is published: ops TF Serving lacks, size.

Ops whose kernels live in the Python runtime (py_func and friends) cannot run
in TF Serving's C++ binary; a `variables/` clearly larger than the weights means
a variable was written twice or optimizer state was exported.
"""

from __future__ import annotations

from pathlib import Path

from tensorflow.core.protobuf import saved_model_pb2

from tfxfer.serving.export.errors import ExportError

# Ops whose kernels live in the Python runtime: TF Serving's C++ binary cannot run them.
PYTHON_OPS = {
    "PyFunc": "tf.numpy_function / tf.compat.v1.py_func",
    "PyFuncStateless": "tf.numpy_function / tf.compat.v1.py_func (stateless)",
    "EagerPyFunc": "tf.py_function",
}

# variables/ may exceed the weights by this factor plus a fixed allowance for the
# checkpoint index and small non-weight state (seed generators, counters).
SIZE_FACTOR = 1.1
SIZE_ALLOWANCE = 64 * 1024

def graph_ops(saved_model_dir: str | Path) -> dict[str, set[str]]:
    """Every op type in a SavedModel's graph and function library -> where it appears."""
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(Path(saved_model_dir, "saved_model.pb").read_bytes())
    ops: dict[str, set[str]] = {}
    for meta_graph in saved.meta_graphs:
        for node in meta_graph.graph_def.node:
            ops.setdefault(node.op, set()).add("graph")
        for function in meta_graph.graph_def.library.function:
            for node in function.node_def:
                ops.setdefault(node.op, set()).add(function.signature.name)
    return ops


def check_ops(saved_model_dir: str | Path) -> None:
    """Raises ExportError naming any op TF Serving's binary cannot run."""
    found = graph_ops(saved_model_dir)
    bad = sorted(set(found) & set(PYTHON_OPS))
    if bad:
        details = "; ".join(
            f"{op} (from {PYTHON_OPS[op]}) in {', '.join(sorted(found[op]))}" for op in bad
        )
        raise ExportError(
            f"The exported graph uses ops that TF Serving cannot run: {details}. Replace "
            "the Python callback with TensorFlow ops."
        )


def directory_bytes(path: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def check_variables_size(saved_model_dir: str | Path, expected_bytes: int) -> int:
    """Raises ExportError when variables/ holds clearly more than the weights (written twice).

    Returns:
        The size of variables/ in bytes.
    """
    written = directory_bytes(Path(saved_model_dir, "variables"))
    limit = SIZE_FACTOR * expected_bytes + SIZE_ALLOWANCE
    if written > limit:
        raise ExportError(
            f"variables/ holds {written / 1e6:.2f} MB for {expected_bytes / 1e6:.2f} MB of "
            "weights: variables were written more than once (or optimizer state was exported)."
        )
    return written

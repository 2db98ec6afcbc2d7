"""Independent measures of an export, computed another way than the exporter's own checks.

The exporter compares the size of `variables/` with `weights_bytes(model)`; these
helpers count what is actually in the checkpoint (tensor by tensor) and what the
Keras model holds (array by array), so a test can compare the two without
reusing the code under test.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def keras_variable_bytes(model) -> int:
    """Bytes of the arrays behind each of the model's variables (weights and state), once."""
    unique = {id(v): v for v in model.variables}.values()
    return sum(np.asarray(v).nbytes for v in unique)


def checkpoint_tensors(saved_model_dir) -> dict[str, np.ndarray]:
    """Every tensor stored in a SavedModel's variables/ checkpoint, by checkpoint key."""
    reader = tf.train.load_checkpoint(str(Path(saved_model_dir, "variables", "variables")))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key != OBJECT_GRAPH_KEY}


def checkpoint_tensor_bytes(saved_model_dir) -> int:
    return sum(np.asarray(t).nbytes for t in checkpoint_tensors(saved_model_dir).values())


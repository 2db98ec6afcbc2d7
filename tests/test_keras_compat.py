"""tfxfer.utils.keras_compat: each private API still answers as the callers expect.

A Keras, keras-hub or TensorFlow upgrade that renames one of them fails here first, by
name, rather than deep inside training or export. (`multi_worker_patches` patches Keras
for the whole process, so it is exercised in tests/test_multiworker.py's workers.)
"""

import keras
import numpy as np
import pytest

from tfxfer.utils import keras_compat


def _functional():
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    outputs = keras.layers.Dense(2, name="out")(hidden)
    return keras.Model(inputs, outputs)


def test_has_random_layer_sees_nested_random_layers():
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal")])
    nested = keras.Sequential([keras.Input((8, 8, 3)), augment, keras.layers.Flatten()])
    assert keras_compat.has_random_layer(nested) and keras_compat.has_random_layer(augment)
    assert not keras_compat.has_random_layer(_functional())


def test_graph_structure_names_producers_and_outputs():
    model = _functional()
    hidden, out = model.get_layer("hidden"), model.get_layer("out")
    assert keras_compat.producing_operation(out.input) is hidden
    outputs = dict(keras_compat.node_outputs(model))
    assert set(outputs) == {model.layers[0], hidden, out}
    assert outputs[out][0] is model.outputs[0]


def test_symbolic_build_creates_the_compiled_metric_variables():
    model = _functional()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    before = len(model.metrics_variables)
    x, y = np.zeros((2, 4), np.float32), np.zeros((2,), np.int64)
    keras_compat.symbolic_build(model, (x, y))
    assert len(model.metrics_variables) > before


def test_bert_feedforward_dense_is_found_in_a_keras_hub_block():
    keras_hub = pytest.importorskip("keras_hub")
    block = keras_hub.layers.TransformerEncoder(intermediate_dim=8, num_heads=2)
    block(np.zeros((1, 3, 4), np.float32))
    dense = keras_compat.bert_feedforward_dense(block)
    assert isinstance(dense, keras.layers.Dense) and dense.units == 8
    assert keras_compat.bert_feedforward_dense(keras.layers.Dense(2)) is None


def test_op_registry_and_converter_error():
    assert keras_compat.op_is_registered("MatMul")
    assert not keras_compat.op_is_registered("NoSuchOpAnywhere")
    assert issubclass(keras_compat.lite_converter_error(), Exception)

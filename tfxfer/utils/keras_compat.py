"""Every use of a Keras, keras-hub or TensorFlow private API, and every patch of one, in one place.

Each item says why the public API does not serve and the versions it was checked on
(Keras 3.15.1, keras-hub 0.32.0, TensorFlow 2.21.0, Python 3.11). When one of them is
upgraded, this module is the list to re-check: run the tests named in each item.

    multi_worker_patches()    two Keras fixes for MultiWorkerMirroredStrategy (patch)
    symbolic_build            creates a compiled model's loss/metric variables before fit
    has_random_layer          whether a layer (or a sublayer) draws random numbers
    node_outputs              (operation, output tensors) of every node of a functional graph
    producing_operation       the layer whose call produced a symbolic tensor
    bert_feedforward_dense    the first feedforward Dense of a keras-hub transformer block
    op_is_registered          whether this process knows a TensorFlow op type
    lite_converter_error      the exception class of a failed LiteRT conversion

Nothing here imports TensorFlow or Keras at module level (like all of tfxfer.utils):
each function imports what it touches when called.

Work-arounds of Keras behaviour that need only public API stay beside their callers;
re-check them on an upgrade too (each names Keras 3.15 in its docstring):

    tfxfer.evaluation.inference_function   predict() mis-splits uneven batches across replicas
    tfxfer.experiment.Experiment.build_model   several replicas: the last partial batch dropped
    tfxfer.training.strategies             BatchNorm frozen by trainable=False, since a nested
                                           call's training=False is overridden
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

# --- multi-worker training (tfxfer.runtime.distribute) ---------------------------------


def _build_from_spec(self, iterator=None, data_batch=None):
    """Keras' `TensorFlowTrainer._maybe_symbolic_build`, building from the element spec.

    Keras 3.15 builds a model before `fit` from the first batch of the distributed
    dataset, averaged over the replicas with `strategy.reduce`; across workers that
    is a collective op on the raw inputs, which fails for uint8 images and strings
    ("Attempt to convert a value (PerReplica...) to a Tensor"). Reading that batch
    also starts an iteration of the pipeline, so the first epoch would get the
    second shuffle order. Only shapes and dtypes matter: a batch of zeros of the
    dataset's element spec serves, and the epochs see the orders of a one-process run.
    Checked on Keras 3.15.1 (tests/test_multiworker.py).
    """
    import tensorflow as tf

    if self._distribute_strategy is None:
        return
    if iterator is not None:
        spec = iterator.data_adapter.get_tf_dataset().element_spec
        data_batch = tf.nest.map_structure(
            lambda s: tf.zeros([1 if d is None else d for d in s.shape], s.dtype), spec)
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _reduce_logs(reduce_per_replica: Callable) -> Callable:
    """Keras' `reduce_per_replica` with "mean" across workers reducing over no axis.

    Keras 3.15 reduces the per-replica logs of a multi-worker step with
    `strategy.reduce("MEAN", v, axis=0)`, which fails on the scalar loss and
    metrics ("Invalid reduction dimension 0 for input with 0 dimensions").
    `_in_multi_worker_mode` (private to tf.distribute) is the strategy's own test of
    whether it spans several workers (a one-worker TF_CONFIG does not).
    Checked on Keras 3.15.1, TensorFlow 2.21.0 (tests/test_multiworker.py).
    """
    import tensorflow as tf

    def reduce(values, strategy, reduction):
        multi_worker = (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                        and strategy.extended._in_multi_worker_mode())
        if not multi_worker or reduction not in ("auto", "mean"):
            return reduce_per_replica(values, strategy, reduction)
        return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)

    return reduce


def multi_worker_patches() -> None:
    """Patches Keras' TensorFlow trainer for the two multi-worker bugs above (idempotent).

    Called when a MultiWorkerMirroredStrategy is created; the module patched is private
    (`keras.src.backend.tensorflow.trainer`), so a Keras upgrade must re-check both.
    Checked on Keras 3.15.1.
    """
    from keras.src.backend.tensorflow import trainer

    trainer.TensorFlowTrainer._maybe_symbolic_build = _build_from_spec
    if not getattr(trainer.reduce_per_replica, "_tfxfer", False):
        trainer.reduce_per_replica = _reduce_logs(trainer.reduce_per_replica)
        trainer.reduce_per_replica._tfxfer = True


# --- compiled state and graph structure (tfxfer.training) ------------------------------


def symbolic_build(model: Any, batch_spec: Any) -> None:
    """Creates a compiled model's loss and metric variables from a batch's spec.

    Keras has no public call for it: outside a distribution strategy it creates them
    inside the first trace of the train step, and TensorFlow then traces the step again
    (0.05 s more on a small head). `Trainer._symbolic_build` is what `fit` itself runs
    under a strategy. Checked on Keras 3.15.1 (tests/test_training.py).
    """
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=batch_spec)


def has_random_layer(layer: Any) -> bool:
    """Whether `layer` or one of its sublayers holds a random seed generator.

    Augmentation and Dropout draw from `SeedGenerator`s that Keras keeps in the private
    `_seed_generators` list; `_flatten_layers` is the private walk over all sublayers
    (public `layers` lists a model's top-level layers only). Checked on Keras 3.15.1
    (tests/test_frozen.py).
    """
    return any(getattr(sub, "_seed_generators", None) for sub in layer._flatten_layers())


def node_outputs(model: Any) -> Iterator[tuple[Any, list]]:
    """(operation, output tensors) of every node of functional `model`'s own graph.

    A layer may be called in several graphs, so its public `.output` can belong to
    another one; the private `_nodes_by_depth` holds this graph's calls only.
    Checked on Keras 3.15.1 (tests/test_frozen.py).
    """
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            yield node.operation, node.output_tensors


def producing_operation(tensor: Any) -> Any:
    """The layer (operation) whose call produced symbolic `tensor`.

    Keras records it in the private `_keras_history`; there is no public accessor.
    Checked on Keras 3.15.1 (tests/test_boundary.py).
    """
    return tensor._keras_history.operation


# --- keras-hub (tfxfer.text.transformer) -----------------------------------------------


def bert_feedforward_dense(block: Any) -> Any | None:
    """The first (intermediate) feedforward Dense of a keras-hub TransformerEncoder block.

    A Hugging Face BERT trained with the exact GELU needs its activation swapped, and
    keras-hub keeps that layer in the private `_feedforward_intermediate_dense` (None
    when a block has no such attribute). Checked on keras-hub 0.32.0
    (tests/test_minilm_assets.py, with the staged all-MiniLM-L6-v2).
    """
    return getattr(block, "_feedforward_intermediate_dense", None)


# --- TensorFlow (tfxfer.serving, tfxfer.lite) ------------------------------------------


def op_is_registered(op_type: str) -> bool:
    """Whether this process knows op `op_type` (core TensorFlow or a loaded op library).

    `tf.raw_ops` lists core ops only; ops registered by importing a library such as
    tensorflow_text are visible in the private `op_def_registry` alone.
    Checked on TensorFlow 2.21.0 (tests/test_text_transformer.py).
    """
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op_type) is not None


def lite_converter_error() -> type[Exception]:
    """The exception `tf.lite.TFLiteConverter.convert` raises when conversion fails.

    TensorFlow does not export it under `tf.lite`; it lives in the private
    `tensorflow.lite.python.convert_phase`. Catching it (not every Exception) lets the
    LiteRT exporter name the unsupported ops. Checked on TensorFlow 2.21.0
    (tests/test_lite.py).
    """
    from tensorflow.lite.python.convert_phase import ConverterError

    return ConverterError

"""A Keras 3 layer around a TF-Hub text embedding (any strings-to-vectors SavedModel).

`tensorflow_hub.KerasLayer` is a tf_keras layer and cannot be used in a Keras 3
model. `keras.layers.TFSMLayer` was checked first (Keras 3.15.1): it calls a
SavedModel endpoint and works frozen, but it does not fit here because

- fine-tuning fails: it names its Keras variables after the TF variables
  ("embeddings:0"), and Adam's slot variables ("embeddings:0_momentum") are
  rejected as scope names;
- it takes a local path only (no TF-Hub handle resolution or caching), and a
  `.keras` file holding it reloads only with `safe_mode=False`.

`HubTextEmbedding` resolves its handle with `tfxfer.text.encoders` (registered
names, TF-Hub handles through `hub.resolve`, SavedModel folders, word-vector
files), loads it with `hub.load`, and tracks the module's own `tf.Variable`s as
Keras variables (same objects, clean names). So they are this layer's weights:
non-trainable while the layer is frozen (the default), trainable weights of the
model when it is unfrozen, saved and restored by `.keras` files (whose config
holds the handle), and exported with the model. The module's functions are
graph functions, so exports carry no Python (`py_function`).
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

import keras
import tensorflow as tf

from tfxfer.text.encoders import resolve_encoder

logger = logging.getLogger(__name__)


def _keras_name(variable: tf.Variable) -> str:
    name = variable.name
    if name.endswith(":0"):
        name = name[:-2]
    return name.replace("/", "_").replace(":", "_")


def _accepts_training(function) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return "training" in parameters


@keras.saving.register_keras_serializable(package="tfxfer")
class HubTextEmbedding(keras.layers.Layer):
    """Embeds a batch of strings with a TF-Hub text-embedding SavedModel.

    Args:
        handle: a registered encoder name, TF-Hub handle, SavedModel directory or
            word-vector file (see `tfxfer.text.encoders`).
        trainable: whether the module's variables train (False: frozen).
        **kwargs: Layer arguments (name, dtype).

    Input: string tensor [batch]. Output: float32 [batch, dim].

    Example:
        text = keras.Input(shape=(), dtype="string")
        vectors = HubTextEmbedding("https://tfhub.dev/google/nnlm-en-dim50/2")(text)
    """

    def __init__(self, handle: str, trainable: bool = False, **kwargs: Any) -> None:
        super().__init__(trainable=trainable, **kwargs)
        # A local path is kept absolute, so a saved model reloads from any directory.
        self.handle = os.path.abspath(handle) if os.path.exists(handle) else handle
        import tensorflow_hub as hub

        path = resolve_encoder(handle)
        self.module_path = path  # the resolved local SavedModel (feature-cache keys use it)
        self._module = hub.load(path)
        if not callable(self._module):
            raise ValueError(
                f"Text encoder {handle!r} ({path}) has no __call__; expected a TF2 SavedModel "
                "that maps a batch of strings to vectors (TF-Hub text-embedding format)."
            )
        self._training_argument = _accepts_training(self._module.__call__)
        self._track_module_variables()
        self.output_dim = self._probe_width(handle)
        self.built = True

    def _track_module_variables(self) -> None:
        trainable = list(getattr(self._module, "trainable_variables", []))
        trainable_ids = {id(v) for v in trainable}
        others = [v for v in getattr(self._module, "variables", []) if id(v) not in trainable_ids]
        self._module_trainable = []
        for variable, is_trainable in [(v, True) for v in trainable] + [(v, False) for v in others]:
            # Created in the layer's name scope, so paths read "backbone/embeddings".
            with keras.name_scope(self.name, caller=self):
                wrapped = keras.Variable(
                    initializer=variable, trainable=is_trainable, dtype=variable.dtype,
                    shape=variable.shape, name=_keras_name(variable),
                )
            self._track_variable(wrapped)
            if is_trainable:
                self._module_trainable.append(wrapped)

    @property
    def module_trainable_weights(self) -> list:
        """The variables the module declares trainable, whether or not the layer is frozen."""
        return list(self._module_trainable)

    def _probe_width(self, handle: str) -> int:
        strategy = tf.distribute.get_strategy()
        if tf.distribute.in_cross_replica_context() and tf.distribute.has_strategy():
            # Under a multi-worker strategy the restored functions only run in a replica.
            vectors = strategy.experimental_local_results(
                strategy.run(lambda: self._module(tf.constant(["a"]))))[0]
        else:
            vectors = self._module(tf.constant(["a"]))
        if vectors.shape.rank != 2 or vectors.shape[0] != 1:
            raise ValueError(
                f"Text encoder {handle!r} must map strings [batch] to vectors [batch, dim]; "
                f"one string gave shape {vectors.shape}."
            )
        return int(vectors.shape[1])

    def call(self, inputs, training=None):
        inputs = tf.reshape(tf.convert_to_tensor(inputs, tf.string), [-1])
        if self._training_argument:
            return self._module(inputs, training=bool(training and self.trainable))
        return self._module(inputs)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "handle": self.handle}

"""Task models: one shared backbone (or text encoder), one head per output.

    input -> [image or text trunk, as for a classifier] -> pooled features
        -> dropout -> [hidden] -> output_<name> for every output
                      (`model.head_towers`: a hidden_<name> per output instead):
              classification  Dense(classes, softmax)
              multilabel      Dense(tags, sigmoid)
              regression      Dense(1) -> TargetScale (back to the target's units,
                                                   clipped to the training range outside
                                                   training), or with a distribution head
                                                   Dense(values, softmax)

The model's outputs are a dict keyed by output name. The trunk is built by the same
factories as a classifier (`build_image_classifier`, `build_text_classifier`,
`build_audio_classifier` with a `head`), so the backbone layer, its strategies and
unfreezing are the same.
"""

from __future__ import annotations

import keras

from tfxfer.config import RunConfig
from tfxfer.image.model import DROPOUT, HIDDEN, build_image_classifier
from tfxfer.modality import AUDIO, IMAGE, validate_modality
from tfxfer.tasks.losses import REGRESSION
from tfxfer.tasks.outputs import Output
from tfxfer.tasks.specs import get_task
from tfxfer.text.model import build_text_classifier

OUTPUT_PREFIX = "output_"


@keras.saving.register_keras_serializable("tfxfer")
class TargetScale(keras.layers.Layer):
    """y = x * std + mean: a regression head learns standardised targets, answers in units.

    Outside training the answer is clipped to [low, high], the range of the training
    targets (IMDB: 1-10 stars); in training it is not, so that a prediction beyond the
    range still gets a gradient.
    """

    def __init__(self, mean: float = 0.0, std: float = 1.0, low: float | None = None,
                 high: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.mean, self.std = float(mean), float(std)
        self.low = None if low is None else float(low)
        self.high = None if high is None else float(high)

    def call(self, x, training=None):
        y = x * self.std + self.mean
        if training or self.low is None or self.high is None:
            return y
        return keras.ops.clip(y, self.low, self.high)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "std": self.std, "low": self.low,
                "high": self.high}


def tower_name(output_name: str) -> str:
    """The name of an output's own hidden layer (`model.head_towers`)."""
    return f"{HIDDEN}_{output_name}"


def _output_layer(x, output: Output):
    name = OUTPUT_PREFIX + output.name
    if output.distribution:
        return keras.layers.Dense(output.units, activation="softmax", dtype="float32",
                                  name=name)(x)
    if output.task == REGRESSION:
        y = keras.layers.Dense(1, dtype="float32", name=f"{name}_standardised")(x)
        return TargetScale(output.mean, output.std, output.low, output.high,
                           dtype="float32", name=name)(y)
    return keras.layers.Dense(output.units, activation=get_task(output.task).activation,
                              dtype="float32", name=name)(x)


def task_head(outputs: list[Output], dropout: float, hidden_units: int,
              towers: bool = False):
    """A head builder (features -> {name: output}) for the classifier factories.

    With `towers`, every output has its own hidden layer (`tower_name`) on the shared
    features; otherwise one hidden layer (if `hidden_units`) feeds every output.
    """
    if not outputs:
        raise ValueError("A task model needs at least one output.")
    if towers and not hidden_units:
        raise ValueError("Head towers need hidden_units > 0. Received: 0")

    def head(features):
        x = keras.layers.Dropout(dropout, name=DROPOUT)(features)
        if hidden_units and not towers:
            x = keras.layers.Dense(hidden_units, activation="relu", name=HIDDEN)(x)
        result = {}
        for output in outputs:
            y = x
            if towers:
                y = keras.layers.Dense(hidden_units, activation="relu",
                                       name=tower_name(output.name))(x)
            result[output.name] = _output_layer(y, output)
        return result

    return head


def build_task_model(config: RunConfig, modality: str, outputs: list[Output], *,
                     from_scratch: bool = False) -> keras.Model:
    """The multi-output model of `outputs` on the trunk `config.model` describes.

    Returns:
        An uncompiled model from raw images, strings or waveforms to a dict of outputs.
    """
    head = task_head(outputs, config.model.dropout, config.model.hidden_units,
                     config.model.head_towers)
    if validate_modality(modality) == IMAGE:
        model = build_image_classifier(config.model, 0, from_scratch=from_scratch, head=head)
    elif modality == AUDIO:
        from tfxfer.audio.model import build_audio_classifier

        model = build_audio_classifier(config.model, 0, from_scratch=from_scratch,
                                       train_batchnorm=config.train.fine_tune_batchnorm,
                                       head=head)
    else:
        model = build_text_classifier(config.model, 0, from_scratch=from_scratch,
                                      seed=config.data.seed, head=head)
    return model


def compile_args(outputs: list[Output], regression_loss: str = "mse") -> dict:
    """The loss, loss weights and metrics `Model.compile` takes for `outputs`."""
    return {
        "loss": {o.name: get_task(o.task).loss(o.std if o.task == REGRESSION else 1.0,
                                               regression_loss, o.values)
                 for o in outputs},
        "loss_weights": {o.name: o.loss_weight for o in outputs},
        "metrics": {o.name: get_task(o.task).metrics(o.values, o.answer) for o in outputs},
    }

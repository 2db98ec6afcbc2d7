"""Learning-rate warmup and decay of a phase (`train.warmup_fraction`, `train.lr_schedule`).

The fit tests run a tiny random BERT (no assets) through `fit_phases` with the per-layer
AdamW that transformer fine-tuning uses, and read the rate from the optimizer at each step.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from transformer_helpers import build_tiny_bert

from tfxfer import cli
from tfxfer.config import ModelConfig, TextConfig, TrainConfig, load_config
from tfxfer.text.model import build_text_classifier
from tfxfer.training.optimizers import LayerwiseAdamW, WarmupSchedule, phase_schedule
from tfxfer.training.strategies import Phase
from tfxfer.training.trainer import compile_for_phase, fit_phases

TEXTS = ["good film", "a dull, awful plot", "great acting", "bad", "fine", "boring story"] * 2
TOP_KERNEL = "transformer_layer_2/feedforward_output_dense/kernel"
HEAD_KERNEL = "predictions/kernel"


@pytest.mark.parametrize("decay, expected", [
    ("constant", [1 / 3, 2 / 3, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
    ("linear", [1 / 3, 2 / 3, 1, 1, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7, 1 / 7]),
    ("cosine", [1 / 3, 2 / 3, 1] + [0.5 * (1 + np.cos(np.pi * k / 7)) for k in range(7)]
     + [0.5 * (1 + np.cos(np.pi * 6 / 7))]),
])
def test_schedule_rises_from_zero_then_holds_or_decays(decay, expected):
    schedule = WarmupSchedule(2.0, warmup_steps=3, total_steps=10, decay=decay)
    values = [float(schedule(step)) for step in range(11)]  # step 10: past the end
    np.testing.assert_allclose(values, 2.0 * np.array(expected), rtol=1e-6)
    assert WarmupSchedule.from_config(schedule.get_config()).get_config() == \
        schedule.get_config()


def test_phase_schedule_counts_the_phase_steps():
    assert phase_schedule(0.1, 5, 2, 0.0, "constant") == 0.1  # the default: a plain rate
    schedule = phase_schedule(0.1, 5, 2, 0.25, "linear")
    assert (schedule.warmup_steps, schedule.total_steps) == (3, 10)  # ceil(0.25 * 10)


class _Rates(keras.callbacks.Callback):
    """Per step: the optimizer's step count and rate, and how far two kernels moved."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier, self.steps = classifier, []

    def _kernels(self):
        by_path = {v.path: v for v in self.classifier.weights}
        return [np.array(by_path[path].numpy()) for path in (TOP_KERNEL, HEAD_KERNEL)]

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        self.before = self._kernels()
        self.steps.append([int(optimizer.iterations.numpy()), float(optimizer.learning_rate)])

    def on_train_batch_end(self, batch, logs=None):
        moved = [np.median(np.abs(b - a)) for a, b in zip(self.before, self._kernels())]
        self.steps[-1].extend(moved)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def _fit(bert, epochs=1, **train):
    model = build_text_classifier(
        ModelConfig(dropout=0.0, text=TextConfig(encoder=str(bert), sequence_length=12)), 2)
    labels = np.arange(len(TEXTS)) % 2
    data = tf.data.Dataset.from_tensor_slices((TEXTS, labels)).batch(4)  # 3 steps an epoch
    config = TrainConfig(strategy="fine_tune", epochs=epochs, fine_tune_epochs=2,
                         learning_rate=1e-2, fine_tune_learning_rate=1e-3, unfreeze_layers=1,
                         optimizer="adamw", layer_lr_decay=0.5, layer_lr_block=1, verbose=0,
                         **train)
    rates = _Rates(model)
    fit_phases(model, data, None, config, callbacks=[rates])
    return model, np.array(rates.steps)


def test_layerwise_adamw_applies_the_warmup_at_each_step(bert_dir, tmp_path):
    model, steps = _fit(bert_dir, warmup_fraction=0.5, lr_schedule="linear")
    assert isinstance(model.optimizer, LayerwiseAdamW)
    head = [1e-2 / 2, 1e-2, 1e-2]  # 3 steps, 2 of warmup; then 1 step of decay from the peak
    tune = [1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3, 2e-3 / 3, 1e-3 / 3]  # 6 steps, 3 of warmup
    np.testing.assert_array_equal(steps[:, 0], [0, 1, 2, 0, 1, 2, 3, 4, 5])  # fresh per phase
    np.testing.assert_allclose(steps[:, 1], head + tune, rtol=1e-6)
    # Adam's first update moves each weight by about its rate: the head by the phase's
    # rate, the top block by half of it (layer_lr_decay 0.5), both warmed up.
    first = steps[3]
    np.testing.assert_allclose(first[2:], [0.5 * tune[0], tune[0]], rtol=0.05)

    path = tmp_path / "m.keras"
    model.save(path)
    schedule = keras.models.load_model(path).optimizer._learning_rate
    assert isinstance(schedule, WarmupSchedule)
    assert (schedule.peak, schedule.warmup_steps, schedule.total_steps) == (1e-3, 3, 6)


def test_without_warmup_the_rate_is_constant_as_before():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    compile_for_phase(model, Phase("scratch", 2, 1e-3, "everything"), TrainConfig())
    assert not isinstance(model.optimizer._learning_rate,
                          keras.optimizers.schedules.LearningRateSchedule)
    rates = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: rates.append(float(model.optimizer.learning_rate)))
    kernel = model.layers[0].kernel.numpy()
    x, y = np.random.default_rng(0).normal(size=(8, 2)), np.arange(8) % 2
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[record])
    assert rates == pytest.approx([1e-3] * 4)
    assert model.optimizer.iterations.numpy() == 4
    assert not np.allclose(model.layers[0].kernel.numpy(), kernel)


def test_a_schedule_needs_a_dataset_of_known_length():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    phase = Phase("scratch", 2, 1e-3, "everything")
    compile_for_phase(model, phase, TrainConfig())  # no schedule: no dataset needed
    unknown = tf.data.Dataset.range(8).filter(lambda x: x > 2)
    with pytest.raises(ValueError, match="batches per epoch.*cardinality -2"):
        compile_for_phase(model, phase, TrainConfig(warmup_fraction=0.1), unknown)


def test_flags_and_bad_values(tmp_path):
    args = cli.build_parser().parse_args(
        ["train", "--data", str(tmp_path), "--warmup", "0.1", "--lr-schedule", "cosine"])
    config = load_config(None, cli.train_overrides(args))
    assert (config.train.warmup_fraction, config.train.lr_schedule) == (0.1, "cosine")
    with pytest.raises(ValueError, match=r"warmup_fraction must be in \[0, 1\). Received: 1.0"):
        load_config(overrides={"train": {"warmup_fraction": 1.0}})
    with pytest.raises(ValueError, match="lr_schedule must be one of.*Received: 'step'"):
        load_config(overrides={"train": {"lr_schedule": "step"}})
    with pytest.raises(ValueError, match="anneals its own learning rate"):
        load_config(overrides={"train": {"strategy": "domain_adaptation", "warmup_fraction": 0.1},
                               "adaptation": {"target_source": str(tmp_path)}})

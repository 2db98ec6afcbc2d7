import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import spread_backbone_weights

from tfxfer.config import ImageConfig, ModelConfig, TrainConfig, load_config
from tfxfer.image.model import build_image_classifier
from tfxfer.training.optimizers import LayerwiseAdam, layerwise_multipliers
from tfxfer.training.strategies import Phase, set_phase_trainable
from tfxfer.training.trainer import WeightSnapshots, fit_phases

CONFIG = ModelConfig(image=ImageConfig(backbone="mobilenet", weights=None, image_size=32,
                                 backbone_kwargs={"alpha": 0.25}, augment=False))


def _data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = np.where(labels[:, None, None, None] == 1, 200, 40).astype(np.uint8)
    images = np.broadcast_to(images, (n, 32, 32, 3)).copy()
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)


def test_two_phases_join_into_one_history():
    model = build_image_classifier(CONFIG, 2)
    train = TrainConfig(epochs=2, fine_tune_epochs=3, learning_rate=1e-3, verbose=0)
    history = fit_phases(model, _data(), _data(seed=1), train)
    assert [r["epoch"] for r in history.rows] == [1, 2, 3, 4, 5]
    assert [r["phase"] for r in history.rows] == ["head"] * 2 + ["fine_tune"] * 3
    assert all(r["learning_rate"] == pytest.approx(1e-4) for r in history.rows[2:])
    assert all(np.isfinite(r["loss"]) and "val_accuracy" in r for r in history.rows)
    head, tune = history.phases
    assert (head.first_epoch, head.epochs_run, tune.first_epoch, tune.epochs_run) == (1, 2, 3, 3)
    assert head.trainable_weights == 2 < tune.trainable_weights


def test_phase_2_rate_must_be_ten_times_lower():
    with pytest.raises(ValueError, match="at least 10x lower.*fine_tune_learning_rate=0.0005"):
        load_config(overrides={"train": {"learning_rate": 1e-3,
                                         "fine_tune_learning_rate": 5e-4}})


def test_layerwise_optimizer_scales_updates_per_variable():
    a, b = keras.Variable(np.ones(3), name="a"), keras.Variable(np.ones(3), name="b")
    opt = LayerwiseAdam(learning_rate=0.1, lr_multipliers={a.path: 0.0, b.path: 1.0})
    opt.apply_gradients([(np.ones(3), a), (np.ones(3), b)])
    np.testing.assert_allclose(a.numpy(), 1.0)
    np.testing.assert_allclose(b.numpy(), 0.9, rtol=1e-4)
    restored = LayerwiseAdam.from_config(opt.get_config())
    assert restored.lr_multipliers == opt.lr_multipliers


def test_layerwise_multipliers_decay_from_the_top():
    model = build_image_classifier(CONFIG, 2)
    set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "all"), TrainConfig())
    multipliers = layerwise_multipliers(model, decay=0.5, block=2)
    assert multipliers["conv_pw_13/kernel"] == 0.5
    assert multipliers["conv_dw_13/kernel"] == 0.5
    assert multipliers["conv_pw_12/kernel"] == 0.25
    assert multipliers["conv1/kernel"] == min(multipliers.values())
    assert "predictions/kernel" not in multipliers


def test_discriminative_phase_2_trains_and_saves(tmp_path):
    model = build_image_classifier(CONFIG, 2)
    train = TrainConfig(epochs=1, fine_tune_epochs=1, layer_lr_decay=0.5, verbose=0)
    fit_phases(model, _data(), None, train)
    assert isinstance(model.optimizer, LayerwiseAdam)
    model.save(tmp_path / "m.keras")
    assert isinstance(keras.models.load_model(tmp_path / "m.keras").optimizer, LayerwiseAdam)


class _Snapshots(keras.callbacks.Callback):
    """The classifier's weights at the end of every epoch (whatever model Keras fits)."""

    def __init__(self, model):
        super().__init__()
        self.classifier, self.weights = model, []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.classifier.get_weights())


def _flipped(ds):
    return ds.map(lambda x, y: (x, 1 - y))


def test_restore_best_returns_the_best_epoch_weights():
    # Spread weights make the features depend on the image; validation labels are
    # the training labels flipped, so the better the fit, the worse val_loss: the
    # best epoch comes early and the weights move on after it.
    model = spread_backbone_weights(build_image_classifier(CONFIG, 2))
    snapshots = _Snapshots(model)
    train = TrainConfig(epochs=2, fine_tune_epochs=2, learning_rate=1e-2, restore_best=True,
                        verbose=0)
    val = _flipped(_data(seed=1))
    history = fit_phases(model, _data(), val, train, callbacks=[snapshots])

    losses = [r["val_loss"] for r in history.rows]
    best_epoch = int(np.argmin(losses)) + 1
    assert len(losses) == len(snapshots.weights) == 4 and best_epoch < 4
    restored = model.get_weights()
    for got, want in zip(restored, snapshots.weights[best_epoch - 1]):
        np.testing.assert_array_equal(got, want)
    assert any(not np.array_equal(got, last) for got, last in zip(restored, snapshots.weights[-1]))
    result = model.evaluate(val, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(min(losses), rel=1e-4)


def test_early_stopping_ends_a_phase():
    model = build_image_classifier(CONFIG, 2)
    train = TrainConfig(strategy="feature_extraction", epochs=30, learning_rate=0.0,
                        early_stopping_patience=1, verbose=0)
    history = fit_phases(model, _data(), _data(seed=1), train)
    assert len(history.rows) < 30


def test_early_stopping_needs_validation_data():
    with pytest.raises(ValueError, match="need validation data"):
        fit_phases(build_image_classifier(CONFIG, 2), _data(), None,
                   TrainConfig(early_stopping_patience=2))


def test_weight_snapshots_read_the_fitted_part_and_equal_full_reads():
    inputs = keras.Input((3,))
    body, head_layer = keras.layers.Dense(4, name="body"), keras.layers.Dense(2, name="top")
    classifier = keras.Model(inputs, head_layer(body(inputs)))
    features = keras.Input((4,))
    head = keras.Model(features, head_layer(features))
    snapshots = WeightSnapshots(classifier)

    body.kernel.assign(np.ones((3, 4)))  # outside a fit every snapshot reads everything
    np.testing.assert_array_equal(snapshots.take()[0], np.ones((3, 4)))
    body.kernel.assign(np.zeros((3, 4)))
    np.testing.assert_array_equal(snapshots.take()[0], np.zeros((3, 4)))

    snapshots.begin(head)
    first = snapshots.take()
    head_layer.kernel.assign(np.full((4, 2), 7.0))
    later = snapshots.take()
    for got, want in zip(later, classifier.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(first[2], later[2])


@pytest.mark.parametrize("train_ds", [True, False], ids=["built-before-fit", "no-dataset"])
def test_compile_for_phase_lets_fit_trace_the_train_step_once(train_ds):
    from tfxfer.training.trainer import compile_for_phase

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    ds = tf.data.Dataset.from_tensor_slices(
        (np.ones((8, 4), np.float32), np.arange(8) % 3)).batch(4)
    compile_for_phase(model, Phase("head", 1, 1e-3, "none"), TrainConfig(),
                      ds if train_ds else None)
    traces = []
    step = model.train_step
    model.train_step = lambda data: traces.append(1) or step(data)
    model.fit(ds, epochs=1, verbose=0)
    # Keras creates the compiled metrics' variables inside the first trace unless they
    # exist, and TensorFlow then traces the step again.
    assert len(traces) == (1 if train_ds else 2)


def test_best_weights_follow_the_monitor_and_refuse_one_the_logs_lack():
    from tfxfer.training.trainer import BestWeights

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = BestWeights(model, monitor="val_rating_loss")
    best.set_model(model)
    best.on_train_begin()
    # The summed loss is best at epoch 1, the rating's own at epoch 2.
    for epoch, (total, rating) in enumerate([(1.0, 0.9), (1.2, 0.5), (1.5, 0.7)]):
        model.layers[0].kernel.assign(np.full((2, 1), epoch, "float32"))
        best.on_epoch_end(epoch, {"val_loss": total, "val_rating_loss": rating})
    best.restore()
    assert best.best_epoch == 2
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), 1.0)
    with pytest.raises(ValueError,
                       match=r"'val_rating_loss' is not among .*\['loss', 'val_loss'\]"):
        best.on_epoch_end(3, {"loss": 1.0, "val_loss": 1.0})


def test_an_accuracy_monitor_is_refused_since_the_monitor_is_minimised():
    with pytest.raises(ValueError, match="minimised.*received the accuracy 'val_label_accuracy'"):
        load_config(overrides={"train": {"monitor": "val_label_accuracy"}})
    assert load_config(overrides={"train": {"monitor": "val_rating_mae"}}).train.monitor == \
        "val_rating_mae"

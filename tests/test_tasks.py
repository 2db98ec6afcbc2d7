"""Task models: regression, multi-label and multi-task heads, masked losses, bad rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_image
from text_helpers import NEGATIVE, NEUTRAL, POSITIVE, build_tiny_encoder, write_csv

from tfxfer.config import DataConfig, load_config, parse_targets

# --- config -------------------------------------------------------------------------------


def test_parse_targets_reads_tasks_and_weights():
    outputs = parse_targets(DataConfig(target="label, rating:regression,tags:multilabel",
                                       loss_weights={"rating": 0.5}))
    assert [(o.name, o.task, o.column, o.loss_weight) for o in outputs] == [
        ("label", None, "label", 1.0), ("rating", "regression", "rating", 0.5),
        ("tags", "multilabel", "tags", 1.0)]


@pytest.mark.parametrize("target, weights, message", [
    ("rating:ordinal", None, "Unknown task 'ordinal'"),
    ("rating,rating", None, "twice"),
    ("rating", {"label": 2.0}, "not targets"),
    ("rating", {"rating": -1.0}, ">= 0"),
    ("rating,,label", None, "empty entry"),
])
def test_parse_targets_refuses_bad_targets(target, weights, message):
    with pytest.raises(ValueError, match=message):
        load_config(overrides={"data": {"target": target, "loss_weights": weights}})


# --- masked losses ------------------------------------------------------------------------


def _toy_model(distribution: bool = False):
    import keras

    from tfxfer.tasks.model import task_head
    from tfxfer.tasks.outputs import Output

    values = [float(v) for v in range(1, 11)] if distribution else []
    outputs = [Output("label", "classification", "label", 1.0, ["a", "b", "c"]),
               Output("tags", "multilabel", "tags", 0.7, ["x", "y"]),
               Output("rating", "regression", "rating", 2.0, mean=5.0, std=3.0, values=values)]
    inputs = keras.Input((4,))
    model = keras.Model(inputs, task_head(outputs, 0.0, 8)(inputs))
    return model, outputs


def _total_loss(model, outputs, x, y):
    import tensorflow as tf

    from tfxfer.tasks.model import compile_args

    args = compile_args(outputs, "distribution" if outputs[-1].values else "mse")
    with tf.GradientTape() as tape:
        predictions = model(x)
        loss = tf.add_n([args["loss_weights"][n] * args["loss"][n](y[n], predictions[n])
                         for n in y])
    return float(loss), [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]


def _batch(rng, n):
    return {"label": rng.integers(0, 3, n), "tags": rng.integers(0, 2, (n, 2)).astype("float32"),
            "rating": rng.integers(1, 11, n).astype("float32")}


@pytest.mark.parametrize("distribution", [False, True], ids=["scalar", "distribution"])
def test_masked_rows_contribute_nothing_to_loss_or_gradients(distribution):
    model, outputs = _toy_model(distribution)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4)).astype("float32")
    y = _batch(rng, 10)
    masked = np.zeros(10, bool)
    masked[[1, 4, 5, 8]] = True
    y_missing = {"label": np.where(masked, -1, y["label"]),
                 "tags": np.where(masked[:, None], np.nan, y["tags"]).astype("float32"),
                 "rating": np.where(masked, np.nan, y["rating"]).astype("float32")}
    wild, zeros = x.copy(), x.copy()
    wild[masked] = 1e4 * rng.normal(size=(masked.sum(), 4))
    zeros[masked] = 0.0
    loss_wild, grads_wild = _total_loss(model, outputs, wild, y_missing)
    loss_zeros, grads_zeros = _total_loss(model, outputs, zeros, y_missing)
    kept = {k: v[~masked] for k, v in y.items()}
    loss_kept, grads_kept = _total_loss(model, outputs, x[~masked], kept)
    assert np.isfinite(loss_wild)
    assert loss_wild == pytest.approx(loss_zeros, rel=1e-6)
    assert loss_wild == pytest.approx(loss_kept, rel=1e-5)
    for a, b, c in zip(grads_wild, grads_zeros, grads_kept):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)
    # The comparison can fail: a labelled row's input does move the loss.
    moved = zeros.copy()
    moved[0] += 3.0
    assert _total_loss(model, outputs, moved, y_missing)[0] != pytest.approx(loss_zeros)


def test_head_towers_give_each_output_its_own_hidden_layer():
    """With towers, one output's loss moves its own hidden layer and not another's."""
    import keras
    import tensorflow as tf

    from tfxfer.image.model import HIDDEN
    from tfxfer.tasks.model import compile_args, task_head, tower_name

    _, outputs = _toy_model()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, task_head(outputs, 0.0, 8, towers=True)(inputs))
    names = {layer.name for layer in model.layers}
    assert {tower_name(o.name) for o in outputs} <= names and HIDDEN not in names
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(6, 4)).astype("float32"), _batch(rng, 6)
    rating_loss = compile_args(outputs)["loss"]["rating"]
    with tf.GradientTape() as tape:
        loss = rating_loss(y["rating"], model(x)["rating"])
    towers = {o.name: model.get_layer(tower_name(o.name)).kernel for o in outputs}
    grads = dict(zip(towers, tape.gradient(loss, list(towers.values()))))
    assert grads["label"] is None and grads["tags"] is None
    assert np.abs(grads["rating"].numpy()).sum() > 0
    with pytest.raises(ValueError, match="hidden_units > 0"):
        task_head(outputs, 0.0, 0, towers=True)


@pytest.mark.parametrize("overrides, message", [
    ({"model": {"head_towers": True, "hidden_units": 0}, "data": {"target": "a,b"}},
     "hidden_units > 0"),
    ({"model": {"head_towers": True, "hidden_units": 8}}, "needs data.target"),
])
def test_head_towers_config_is_refused_where_it_cannot_apply(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(overrides=overrides)


def test_one_output_missing_keeps_the_others():
    """A row without a rating still trains the label head; a batch with no rating gives 0."""
    model, outputs = _toy_model()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4)).astype("float32")
    y = _batch(rng, 6)
    y["rating"][:] = np.nan
    from tfxfer.tasks.model import compile_args

    args = compile_args(outputs)
    predictions = model(x)
    assert float(args["loss"]["rating"](y["rating"], predictions["rating"])) == 0.0
    assert float(args["loss"]["label"](y["label"], predictions["label"])) > 0.0


# --- data -----------------------------------------------------------------------------------


def _reviews(n: int, seed: int = 0, missing_every: int = 0):
    """Reviews with k of 3 sentiment words positive; rating = 2k + 1, label = k >= 2.

    With `missing_every` m, the ratings of every m-th group of four reviews are empty.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = i % 4
        words = [*rng.choice(POSITIVE, k), *rng.choice(NEGATIVE, 3 - k),
                 *rng.choice(NEUTRAL[:4], 2)]
        rng.shuffle(words)
        missing = missing_every and (i // 4) % missing_every == 0  # every k keeps some
        rows.append((" ".join(words), "pos" if k >= 2 else "neg", "" if missing else 2 * k + 1))
    return rows


def _text_config(root: Path, source: Path, target: str, encoder: Path | None = None,
                 model: dict | None = None, **train):
    encoder = encoder or build_tiny_encoder(root / "enc")
    return load_config(overrides={
        "data": {"source": str(source), "target": target, "batch_size": 8,
                 "val_fraction": 0.2, "test_fraction": 0.2, "seed": 3},
        "model": {"dropout": 0.0, "text": {"encoder": str(encoder)}, **(model or {})},
        "train": {"strategy": "feature_extraction", "epochs": 40, "learning_rate": 0.05,
                  "verbose": 0, "tensorboard": False, **train},
        "out": str(root / "run"),
    })


def test_bad_rows_are_named_by_line_counted_and_skipped(tmp_path, caplog):
    from tfxfer.tasks.table import load_task_splits

    rows = _reviews(12)
    rows[3] = ("a review\nover two lines", "pos", "ten")      # lines 5-6: non-numeric
    rows[6] = ("", "neg", "3")                                 # line 9: empty input
    rows[8] = ("good film", "", "")                            # line 11: no target
    source = write_csv(tmp_path / "reviews.csv", rows, header=("text", "label", "rating"))
    test = write_csv(tmp_path / "test.csv", [("good", "meh", "5"), ("bad", "neg", "1")],
                     header=("text", "label", "rating"))
    data = DataConfig(source=str(source), test_source=str(test),
                      target="label,rating:regression", val_fraction=0.2, test_fraction=0.0)
    with caplog.at_level("WARNING"):
        splits = load_task_splits(data)
    summary = splits.summary()
    where = {(Path(r["table"]).name, r["where"]): r["kind"] for r in summary["skipped"]}
    assert where == {("reviews.csv", "line 5"): "non-numeric target",
                     ("reviews.csv", "line 9"): "empty input",
                     ("reviews.csv", "line 11"): "no target",
                     ("test.csv", "line 2"): "unknown class"}
    assert summary["bad_rows"] == 4
    assert summary["bad_rows_by_reason"]["unknown class"] == 1
    assert "line 5: non-numeric target rating='ten'" in caplog.text
    assert splits.size("train") + splits.size("val") == 9 and splits.size("test") == 1


def test_image_table_missing_file_is_named(tmp_path):
    from tfxfer.tasks.table import load_task_splits

    images = tmp_path / "images"
    for i in range(4):
        write_image(images / f"{i}.png", (200, 30, 30), size=(12, 12), seed=i)
    rows = [(f"images/{i}.png", i) for i in range(4)] + [("images/gone.png", 9)]
    source = write_csv(tmp_path / "table.csv", rows, header=("path", "size"))
    data = DataConfig(source=str(source), target="size:regression", image_column="path",
                      val_fraction=0.25, test_fraction=0.0)
    splits = load_task_splits(data, image_size=16)
    assert [(r.where, r.kind) for r in splits.bad_rows] == [("line 6", "missing file")]
    assert splits.size("train") + splits.size("val") == 4


# --- training ---------------------------------------------------------------------------------


def test_text_regression_learns_a_known_function(tmp_path):
    from tfxfer.experiment import train

    source = write_csv(tmp_path / "r.csv", _reviews(80), header=("text", "label", "rating"))
    result = train(_text_config(tmp_path, source, "rating"))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())["outputs"]["rating"]
    assert metrics["task"] == "regression"
    assert metrics["mae"] < 0.5 < metrics["mae_of_train_mean"]
    assert metrics["spearman"] > 0.9
    for name in ("mae", "rmse", "spearman"):  # 95% bootstrap intervals around each score
        low, high = metrics[f"{name}_interval"]
        assert low <= metrics[name] <= high
    assert metrics["mae_interval"][0] < metrics["mae_interval"][1]
    assert (result.run_dir / "rating_scatter.png").stat().st_size > 0
    assert (result.run_dir / "rating_residuals.png").stat().st_size > 0


def test_a_table_has_one_input_column():
    from tfxfer.tasks.table import table_input

    assert table_input(DataConfig(audio_column="wav")) == ("audio", "wav")
    assert table_input(DataConfig()) == ("text", "text")
    with pytest.raises(ValueError, match="one input column.*'img'.*'wav'"):
        table_input(DataConfig(image_column="img", audio_column="wav"))


def test_distribution_median_mean_and_its_refusal_of_continuous_targets():
    import tensorflow as tf

    from tfxfer.tasks.evaluation import point_predictions
    from tfxfer.tasks.losses import MaskedMetric, distribution_point
    from tfxfer.tasks.outputs import Output, with_regression_heads

    values = [1.0, 2.0, 7.0, 10.0]
    p = np.array([[0.6, 0.1, 0.1, 0.2], [0.2, 0.2, 0.1, 0.5], [0.25, 0.25, 0.5, 0.0]], "float32")
    np.testing.assert_allclose(distribution_point(values, tf.constant(p)), [1.0, 7.0, 2.0])
    means = [0.6 + 0.2 + 0.7 + 2.0, 0.2 + 0.4 + 0.7 + 5.0, 0.25 + 0.5 + 3.5]
    np.testing.assert_allclose(distribution_point(values, tf.constant(p), "mean"), means,
                               rtol=1e-6)
    with pytest.raises(ValueError, match="received 'mode'"):
        distribution_point(values, tf.constant(p), "mode")
    rating = Output("rating", "regression", "rating", values=values)
    np.testing.assert_allclose(point_predictions([rating], {"rating": p})["rating"], [1, 7, 2])
    by_mean = Output("rating", "regression", "rating", values=values, answer="mean")
    np.testing.assert_allclose(point_predictions([by_mean], {"rating": p})["rating"], means,
                               rtol=1e-6)
    # The training metric reports the MAE of the same answer.
    metric = MaskedMetric("mae", values, answer="mean")
    metric.update_state(np.array([1.0, 10.0, np.nan], "float32"), p)
    np.testing.assert_allclose(float(metric.result()), (abs(means[0] - 1) + abs(means[1] - 10)) / 2,
                               rtol=1e-6)
    assert MaskedMetric.from_config(metric.get_config()).answer == "mean"
    scalar = Output("rating", "regression", "rating")
    [resolved] = with_regression_heads([scalar], {"rating": np.array([1, 10, 2, np.nan, 1])},
                                       "distribution", answer="mean")
    assert resolved.answer == "mean"
    assert resolved.values == [1.0, 2.0, 10.0] and resolved.units == 3
    assert with_regression_heads([scalar], {"rating": np.arange(3.0)}, "mae") == [scalar]
    with pytest.raises(ValueError, match="at most 50 distinct values; 'rating' has 51"):
        with_regression_heads([scalar], {"rating": np.arange(51.0)}, "distribution")


@pytest.mark.parametrize("answer", ["median", "mean"])
def test_distribution_head_learns_and_exports_its_answer(tmp_path, answer):
    from tfxfer.experiment import train
    from tfxfer.tasks.export import export_task_run, predict_task_run

    source = write_csv(tmp_path / "r.csv", _reviews(80), header=("text", "label", "rating"))
    result = train(_text_config(tmp_path, source, "rating", regression_loss="distribution",
                                distribution_answer=answer))
    outputs = json.loads((result.run_dir / "outputs.json").read_text())
    assert outputs[0]["values"] == [1.0, 3.0, 5.0, 7.0] and outputs[0]["answer"] == answer
    metrics = json.loads((result.run_dir / "metrics.json").read_text())["outputs"]["rating"]
    assert metrics["mae"] < 0.5 < metrics["mae_of_train_mean"]
    texts = ["good great love movie", "bad awful hate film", "good bad dull plot"]
    answers = _serve(export_task_run(result.run_dir, tmp_path / "models", "r").path, texts)
    local = [r["rating"] for r in predict_task_run(result.run_dir, texts)]
    if answer == "median":  # one of the training values
        assert answers["rating_value"].tolist() == [7.0, 1.0, 3.0]  # rating = 2k + 1
    else:  # between them, near the right one
        np.testing.assert_allclose(answers["rating_value"], [7.0, 1.0, 3.0], atol=0.5)
        assert not set(answers["rating_value"].tolist()) <= {1.0, 3.0, 5.0, 7.0}
    np.testing.assert_allclose(local, answers["rating_value"], atol=1e-4)


@pytest.fixture(scope="module")
def multitask_run(tmp_path_factory):
    """A sentiment + rating run on the tiny encoder with half of the ratings missing."""
    from tfxfer.experiment import train

    root = tmp_path_factory.mktemp("multitask")
    source = write_csv(root / "r.csv", _reviews(96, missing_every=2),
                       header=("text", "label", "rating"))
    return train(_text_config(root, source, "label,rating:regression"))


def test_masked_multitask_trains_both_heads(multitask_run):
    """Half of the ratings missing: both heads learn; the summary counts labelled rows."""
    result = multitask_run
    metrics = json.loads((result.run_dir / "metrics.json").read_text())["outputs"]
    assert metrics["label"]["accuracy"] >= 0.9
    assert metrics["rating"]["mae"] < 0.8
    summary = json.loads((result.run_dir / "data_summary.json").read_text())
    total = sum(summary["examples"].values())
    assert sum(summary["labelled"][s]["label"] for s in summary["labelled"]) == total
    assert sum(summary["labelled"][s]["rating"] for s in summary["labelled"]) == total // 2
    history = result.history.rows[-1]
    assert np.isfinite(history["rating_loss"]) and np.isfinite(history["label_loss"])


COLOUR_TAGS = {"red": ((220, 40, 40), "warm"), "orange": ((240, 150, 30), "warm|bright"),
               "blue": ((40, 60, 220), "cool"), "cyan": ((40, 220, 230), "cool|bright")}


def _colour_table(root: Path, per_colour: int) -> Path:
    rows = []
    for c, (name, (colour, tags)) in enumerate(COLOUR_TAGS.items()):
        for i in range(per_colour):
            path = write_image(root / "images" / f"{name}_{i}.png", colour, size=(20, 20),
                               seed=c * 100 + i)
            rows.append((str(path.relative_to(root)), tags))
    return write_csv(root / "colours.csv", rows, header=("path", "tags"))


def test_multilabel_tags_learnt_from_colour(tmp_path):
    from tfxfer.experiment import train

    source = _colour_table(tmp_path, 12)
    config = load_config(overrides={
        "data": {"source": str(source), "target": "tags", "image_column": "path",
                 "batch_size": 8, "val_fraction": 0.25, "test_fraction": 0.25, "seed": 0},
        "model": {"dropout": 0.0, "image": {"backbone": "dann_mnist_cnn", "weights": "none",
                                            "image_size": 28, "augment": False}},
        "train": {"strategy": "from_scratch", "epochs": 25, "learning_rate": 0.01,
                  "verbose": 0, "tensorboard": False},
        "out": str(tmp_path / "run"),
    })
    result = train(config)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())["outputs"]["tags"]
    assert metrics["task"] == "multilabel"
    assert metrics["micro_f1"] >= 0.9, metrics
    assert metrics["micro_f1_interval"][0] <= metrics["micro_f1"] <= metrics["micro_f1_interval"][1]
    assert [r["label"] for r in metrics["per_label"]] == ["bright", "cool", "warm"]
    outputs = json.loads((result.run_dir / "outputs.json").read_text())
    assert len(outputs[0]["thresholds"]) == 3
    with (result.run_dir / "predictions.csv").open() as f:
        row = next(csv.DictReader(f))
    assert {"input", "tags_true", "tags_predicted", "tags_p_warm"} <= set(row)

    # The export answers encoded image bytes with the tags above their thresholds.
    from tfxfer.tasks.export import export_task_run

    probes = {name: write_image(tmp_path / f"probe_{name}.png", colour, size=(20, 20), seed=7)
              for name, (colour, _) in COLOUR_TAGS.items()}
    exported = export_task_run(result.run_dir, tmp_path / "models", "colours")
    answers = _serve(exported.path, [p.read_bytes() for p in probes.values()])
    assert answers["tags_probabilities"].shape == (4, 3)
    assert [set(t.decode().split("|")) for t in answers["tags_labels"]] == [
        set(tags.split("|")) for _, tags in COLOUR_TAGS.values()]


# --- export ---------------------------------------------------------------------------------


def _serve(path: Path, inputs: list) -> dict:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    result = loaded.signatures["serving_default"](inputs=tf.constant(inputs))
    return {k: v.numpy() for k, v in result.items()}


def test_text_task_export_answers_raw_strings(multitask_run, tmp_path):
    from tfxfer.tasks.export import export_task_run, predict_task_run

    result = multitask_run
    exported = export_task_run(result.run_dir, tmp_path / "models", "reviews")
    assert exported.path == tmp_path / "models" / "reviews" / "1"
    assert exported.output_keys == ["label_class_id", "label_class_name", "label_probabilities",
                                    "rating_value"]
    texts = ["good great love movie", "bad awful hate film", "good bad dull plot"]
    answers = _serve(exported.path, texts)
    assert answers["label_class_name"].tolist() == [b"pos", b"neg", b"neg"]
    # rating = 2k + 1 for k positive words of 3
    np.testing.assert_allclose(answers["rating_value"], [7.0, 1.0, 3.0], atol=1.0)
    local = predict_task_run(result.run_dir, texts)
    np.testing.assert_allclose([r["rating"] for r in local], answers["rating_value"], atol=1e-4)
    assert [r["label"] for r in local] == ["pos", "neg", "neg"]


def test_task_runs_refuse_litert_export(tmp_path):
    from tfxfer.lite.export import export_run_tflite
    from tfxfer.tasks.outputs import Output, write_outputs

    write_outputs(tmp_path, [Output("rating", "regression", "rating")])
    with pytest.raises(ValueError, match="LiteRT export converts single-label classifiers"):
        export_run_tflite(tmp_path)


# --- resume -----------------------------------------------------------------------------------

KILLER = """
import json, os, signal, sys
import keras
from tfxfer import experiment
from tfxfer.config import config_from_dict
from tfxfer.training import trainer as training

class Kill(keras.callbacks.Callback):
    steps = 0
    def on_train_batch_end(self, batch, logs=None):
        Kill.steps += 1
        if Kill.steps == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

class KillingTrainer(training.PhaseTrainer):
    def __init__(self, model, train_ds, val_ds, train, callbacks=(), *args, **kwargs):
        super().__init__(model, train_ds, val_ds, train, [*callbacks, Kill()], *args, **kwargs)

experiment.PhaseTrainer = KillingTrainer
experiment.train(config_from_dict(json.load(open(sys.argv[1]))))
"""


def test_multitask_run_resumes_after_sigkill(tmp_path):
    import os
    import subprocess
    import sys

    from tfxfer.experiment import train

    source = write_csv(tmp_path / "r.csv", _reviews(40, missing_every=2),
                       header=("text", "label", "rating"))
    config = _text_config(tmp_path, source, "label,rating:regression", strategy="fine_tune_all",
                          epochs=2, fine_tune_epochs=2)
    steps_per_epoch = 3  # 24 training rows, batch 8
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", KILLER, str(config_file),
                           str(steps_per_epoch * 2 + 2)],  # phase 2, its first epoch
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]
    run_dir = Path(config.out)
    assert not (run_dir / "model.keras").exists()

    result = train(load_config(), resume=run_dir)
    assert [(r["epoch"], r["phase"]) for r in result.history.rows] == [
        (1, "head"), (2, "head"), (3, "fine_tune"), (4, "fine_tune")]
    assert (run_dir / "model.keras").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())["outputs"]
    assert set(metrics) == {"label", "rating"}
    assert np.isfinite(metrics["rating"]["mae"])


@pytest.mark.parametrize("towers", [False, True], ids=["shared-hidden", "towers"])
def test_cached_phase_one_matches_the_full_model(tmp_path, towers):
    """Phase 1 on cached features trains the same heads as on the full model."""
    from tfxfer.experiment import train

    source = write_csv(tmp_path / "r.csv", _reviews(48, missing_every=3),
                       header=("text", "label", "rating"))
    runs, encoder = {}, build_tiny_encoder(tmp_path / "enc")
    head = {"hidden_units": 8, "head_towers": towers}
    for cache in ("on", "off"):
        config = _text_config(tmp_path / cache, source, "label,rating:regression", encoder,
                              head, epochs=5, bottleneck_cache=cache)
        runs[cache] = train(config)
    cached, full = runs["on"].history, runs["off"].history
    assert cached.phases[0].mode == "cached features (in memory)"
    assert full.phases[0].mode == "full model"
    for a, b in zip(cached.rows, full.rows):
        assert a["rating_loss"] == pytest.approx(b["rating_loss"], rel=1e-3)
        assert a["val_label_loss"] == pytest.approx(b["val_label_loss"], rel=1e-3)


@pytest.mark.parametrize("train, message", [
    ({"strategy": "auto"}, "strategy='auto'"),
    ({"learning_rate": "auto"}, "learning_rate='auto'"),
])
def test_task_models_refuse_what_they_cannot_do(train, message):
    from tfxfer.tasks.run import validate_task_config

    config = load_config(overrides={"data": {"target": "rating"}, "train": train})
    with pytest.raises(ValueError, match=message):
        validate_task_config(config)


def test_regression_answers_are_clipped_to_the_training_range_outside_training():
    from tfxfer.tasks.model import TargetScale

    layer = TargetScale(mean=5.0, std=2.0, low=1.0, high=10.0)
    x = np.array([[-5.0], [0.5], [5.0]], "float32")
    np.testing.assert_allclose(layer(x, training=False), [[1.0], [6.0], [10.0]])
    np.testing.assert_allclose(layer(x, training=True), [[-5.0], [6.0], [15.0]])
    rebuilt = TargetScale.from_config(layer.get_config())
    assert (rebuilt.low, rebuilt.high) == (1.0, 10.0)


def test_task_flags_land_in_the_config():
    from tfxfer.cli import parse_train_config

    config = parse_train_config([
        "--data", "t.csv", "--target", "label,rating:regression", "--loss-weights",
        "rating=0.5", "--tag-delimiter", ";", "--image-column", "path",
        "--regression-loss", "huber", "--audio-column", "wav"])
    assert config.data.target == "label,rating:regression"
    assert config.data.loss_weights == {"rating": 0.5}
    assert (config.data.tag_delimiter, config.data.image_column) == (";", "path")
    assert config.train.regression_loss == "huber" and config.data.audio_column == "wav"


# --- audio tables -----------------------------------------------------------------------------


def _tone_table(root: Path) -> Path:
    """WAVs whose pitch (300 or 1500 Hz) and length (0.15 or 0.45 s) are the two targets,
    plus a truncated WAV and a missing file."""
    from audio_helpers import tone, write_wav

    rows = []
    for pitch, hz in (("low", 300.0), ("high", 1500.0)):
        for length, seconds in (("short", 0.15), ("long", 0.45)):
            for i in range(6):
                name = f"clips/{pitch}_{length}_{i}.wav"
                write_wav(root / name, tone(hz, 8000, seconds, phase=i), 8000)
                rows.append((name, pitch, length))
    good = (root / rows[0][0]).read_bytes()
    (root / "clips" / "truncated.wav").write_bytes(good[:30])
    rows += [("clips/truncated.wav", "low", "short"), ("clips/gone.wav", "high", "long")]
    return write_csv(root / "clips.csv", rows, header=("path", "pitch", "length"))


def test_audio_multitask_table_trains_and_exports_wav_bytes(tmp_path, caplog):
    from tfxfer.experiment import train
    from tfxfer.tasks.export import export_task_run, predict_task_run

    source = _tone_table(tmp_path)
    config = load_config(overrides={
        "data": {"source": str(source), "target": "pitch,length", "audio_column": "path",
                 "batch_size": 8, "val_fraction": 0.25, "test_fraction": 0.0, "seed": 0},
        "model": {"dropout": 0.0,
                  "image": {"backbone": "dann_mnist_cnn", "weights": "none", "image_size": 28},
                  "audio": {"sample_rate": 8000, "clip_seconds": 0.5, "augment": False}},
        "train": {"strategy": "from_scratch", "epochs": 20, "learning_rate": 0.01,
                  "verbose": 0, "tensorboard": False},
        "out": str(tmp_path / "run"),
    })
    result = train(config)
    splits = result.splits
    assert splits.modality == "audio"
    assert sorted((r.where, r.kind) for r in splits.bad_rows) == [
        ("line 26", "bad audio"), ("line 27", "missing file")]
    assert "clips/truncated.wav" in caplog.text

    exported = export_task_run(result.run_dir, tmp_path / "models", "tones")
    assert exported.modality == "audio"
    assert set(exported.signatures) == {"serving_default", "serving_waveform"}
    clips = sorted((tmp_path / "clips").glob("*_*_*.wav"))
    answers = _serve(exported.path, [c.read_bytes() for c in clips])
    want = np.array([c.name.split("_")[:2] for c in clips])
    got = np.stack([answers["pitch_class_name"].astype(str),
                    answers["length_class_name"].astype(str)], axis=1)
    assert np.all(np.mean(got == want, axis=0) >= 0.9), got
    local = predict_task_run(result.run_dir, [c.read_bytes() for c in clips[:3]])
    np.testing.assert_allclose([r["pitch_probabilities"] for r in local],
                               answers["pitch_probabilities"][:3], atol=1e-5)

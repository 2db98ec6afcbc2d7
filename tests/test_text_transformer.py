"""keras-hub transformer encoders on a tiny random BERT saved as a preset folder (no assets).

The folder is written by keras-hub's own `save_to_preset`, so every test loads it through
the same path as a real checkpoint: `--encoder FOLDER` -> `TransformerTextEncoder`.
"""

import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from text_helpers import review_rows, write_csv
from transformer_helpers import MAX_SEQUENCE_LENGTH, NUM_LAYERS, build_tiny_bert

from tfxfer import cli, rundir
from tfxfer.config import ModelConfig, TextConfig, TrainConfig
from tfxfer.serving.client import predict_local
from tfxfer.serving.op_libraries import custom_ops, import_op_libraries
from tfxfer.serving.server.servable import load_servable
from tfxfer.text import encoders
from tfxfer.text.model import build_text_classifier
from tfxfer.text.transformer import TransformerEncoderError, TransformerTextEncoder
from tfxfer.training import boundary
from tfxfer.training.optimizers import layerwise_multipliers, make_optimizer
from tfxfer.training.strategies import Phase, plan_phases, set_phase_trainable

TEXTS = ["Good film!", "a dull, awful plot<br /><br />", "", "zzz unknown words " * 10]
EMBEDDING_UNITS = ["token_embedding", "position_embedding", "segment_embedding",
                   "embeddings_layer_norm"]
BLOCKS = [f"transformer_layer_{i}" for i in range(NUM_LAYERS)]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert")


def _model(bert_dir, **model):
    text = TextConfig(encoder=str(bert_dir), **{"sequence_length": 12, **model})
    config = ModelConfig(dropout=0.0, text=text)
    return build_text_classifier(config, 2)


def _trainable_units(model) -> list[str]:
    encoder = model.get_layer("backbone")
    names = [layer.name for layer in encoder.transformer.layers if layer.trainable_weights]
    return [n for n in names if encoder.trainable]


def test_strings_in_probabilities_out(bert_dir):
    model = _model(bert_dir)
    assert encoders.transformer_preset(str(bert_dir)) == str(bert_dir)
    assert model.get_layer("backbone").pooling == "mean"  # no sentence-transformers config
    probabilities = model.predict(tf.constant(TEXTS), verbose=0)
    assert probabilities.shape == (4, 2) and not np.isnan(probabilities).any()
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-6)
    assert len(model.trainable_weights) == 2  # built frozen: the head only


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_ignores_padding(bert_dir, pooling):
    texts = tf.constant(["good film", "bad plot , dull film"])
    short = TransformerTextEncoder(str(bert_dir), sequence_length=8, pooling=pooling)
    long = TransformerTextEncoder(str(bert_dir), sequence_length=16, pooling=pooling)
    np.testing.assert_allclose(short(texts), long(texts), atol=1e-5)
    features = long.tokenize(texts)
    hidden = long.transformer(features)["sequence_output"].numpy()
    mask = features["padding_mask"].numpy()
    expected = (hidden[:, 0] if pooling == "cls"
                else (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True))
    np.testing.assert_allclose(long(texts), expected, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_dynamic_padding_cuts_batches_to_their_longest_text_without_changing_outputs(
        bert_dir, pooling):
    texts = tf.constant(["good film", "bad plot , dull film", ""])
    fixed = TransformerTextEncoder(str(bert_dir), sequence_length=16, pooling=pooling,
                                   dynamic_padding=False)
    dynamic = TransformerTextEncoder(str(bert_dir), sequence_length=16, pooling=pooling)
    longest = int(fixed.tokenize(texts)["padding_mask"].numpy().sum(1).max())
    assert longest < 16
    assert fixed.tokenize(texts)["token_ids"].shape == (3, 16)
    assert {v.shape for v in dynamic.tokenize(texts).values()} == {(3, longest)}
    np.testing.assert_allclose(dynamic(texts), fixed(texts), atol=1e-5)
    # A text longer than sequence_length is still truncated to it.
    long_text = tf.constant(["word " * 40])
    assert dynamic.tokenize(long_text)["token_ids"].shape == (1, 16)
    np.testing.assert_allclose(dynamic(long_text), fixed(long_text), atol=1e-5)


@pytest.mark.parametrize("train, phase, expected", [
    (TrainConfig(), "none", []),
    (TrainConfig(unfreeze_layers=1), "top", BLOCKS[-1:]),
    (TrainConfig(unfreeze_layers=2), "top", BLOCKS[-2:]),
    (TrainConfig(unfreeze_layers=NUM_LAYERS + 1), "top", EMBEDDING_UNITS[-1:] + BLOCKS),
    (TrainConfig(unfreeze_fraction=0.3), "top", BLOCKS[-3:]),  # ceil(0.3 * 7 units)
    (TrainConfig(unfreeze_from="transformer_layer_1"), "top", BLOCKS[1:]),
    (TrainConfig(), "all", EMBEDDING_UNITS + BLOCKS),
])
def test_phase_2_unfreezes_exactly_the_blocks_asked(bert_dir, train, phase, expected):
    model = _model(bert_dir)
    set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "top"), TrainConfig())  # dirty it
    set_phase_trainable(model, Phase("p", 1, 1e-4, phase), train)
    assert _trainable_units(model) == expected  # the unused pooler never trains
    head = 2
    per_block = len(model.get_layer("backbone").transformer.get_layer(BLOCKS[0]).weights)
    blocks = sum(name in BLOCKS for name in expected)
    embeddings = sum(len(model.get_layer("backbone").transformer.get_layer(n).weights)
                     for n in expected if n in EMBEDDING_UNITS)
    assert len(model.trainable_weights) == head + blocks * per_block + embeddings


def test_dropout_only_while_the_transformer_trains(bert_dir):
    model = _model(bert_dir)
    texts = tf.constant(TEXTS[:2])
    frozen = [model(texts, training=True).numpy() for _ in range(2)]
    np.testing.assert_allclose(frozen[0], frozen[1])  # phase 1: deterministic features
    set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "all"), TrainConfig())
    trained = [model(texts, training=True).numpy() for _ in range(2)]
    assert not np.allclose(trained[0], trained[1])


def test_keras_file_round_trip_keeps_fine_tuned_weights(tmp_path):
    bert_dir = build_tiny_bert(tmp_path / "bert", seed=1)
    model = _model(bert_dir, text_pooling="cls")
    block = model.get_layer("backbone").transformer.get_layer(BLOCKS[-1])
    block.weights[0].assign(block.weights[0] + 0.5)  # as if fine-tuned
    expected = model.predict(tf.constant(TEXTS), verbose=0)
    model.save(tmp_path / "model.keras")
    shutil.rmtree(bert_dir)  # the file holds the transformer, its tokenizer and vocabulary
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    encoder = loaded.get_layer("backbone")
    assert (encoder.preset, encoder.sequence_length, encoder.pooling) == (
        str(bert_dir), 12, "cls")
    np.testing.assert_allclose(loaded.predict(tf.constant(TEXTS), verbose=0), expected,
                               atol=1e-6)


def test_train_caches_phase_1_exports_and_predicts_with_label_names(bert_dir, tmp_path, capsys):
    data = write_csv(tmp_path / "reviews.csv", review_rows(24, labels=("0", "1")))
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["train", "--data", str(data), "--encoder", str(bert_dir), "--out", str(out),
            "--strategy", "fine_tune", "--unfreeze-layers", "1", "--epochs", "2",
            "--fine-tune-epochs", "1", "--batch-size", "4", "--verbose", "0", "--seed", "1",
            "--optimizer", "adamw", "--no-tensorboard", "--cache-dir", str(cache),
            "--label-names", "0=negative,1=positive", "--sequence-length", "12",
            "--warmup", "0.1"]  # as apps/imdb/minilm.yaml: needs batches per epoch
    assert cli.main(args) == 0
    assert "class" in capsys.readouterr().out
    assert len(list((cache / "features").iterdir())) == 2  # train and val, computed once
    assert (out / rundir.LABELS).read_text().split() == ["negative", "positive"]
    phases = json.loads((out / rundir.PHASES).read_text())
    per_block = 16  # attention q/k/v/o kernels and biases, 2 LayerNorms, 2 dense layers
    assert [(p["name"], p["trainable_weights"]) for p in phases] == [
        ("head", 2), ("fine_tune", 2 + per_block)]
    # Both phases read the activations below the unfrozen block, computed once.
    assert [p["mode"] for p in phases] == [
        "cached features", f"cached activations at 'transformer_layer_{NUM_LAYERS - 1}'"]
    assert json.loads((out / rundir.CONFIG).read_text())["model"]["text"]["sequence_length"] == 12

    base = tmp_path / "exports"
    assert cli.main(["export", str(out), "--name", "reviews", "--base", str(base),
                     "--verify"]) == 0
    capsys.readouterr()
    export = base / "reviews" / "1"
    assert {"FastWordpieceTokenizeWithOffsets", "RegexSplitWithOffsets"} <= custom_ops(export)
    assert import_op_libraries(export) == ["tensorflow_text"]
    rows = predict_local(export, ["a good film", "bad plot"])
    assert {row["class_name"] for row in rows} <= {"negative", "positive"}
    servable = load_servable("reviews", 1, export)  # what `tfxfer serve` loads
    assert "serving_default" in servable.functions

    # On-device export, in a fresh process (the run's encoder class must load without
    # training first): refused, naming the TF Text ops and which part cannot go on-device.
    lite = subprocess.run([sys.executable, "-m", "tfxfer.cli", "export", str(out), "--format",
                           "tflite"], capture_output=True, text=True, timeout=300)
    assert lite.returncode == 2, lite.stderr[-3000:]
    error = [line for line in lite.stderr.splitlines() if "ERROR tfxfer" in line][-1]
    for op in ("tf.FastWordpieceTokenizeWithOffsets", "tf.TFText>RoundRobinTrim",
               "tf.CaseFoldUTF8", "tf.RegexSplitWithOffsets"):
        assert op in error.split("TF Text ops")[1].split("TensorFlow string")[0]
    assert "preprocessor 'bert_text_classifier_preprocessor'" in error
    assert "which cannot go on-device" in error
    assert "transformer 'bert_backbone' (padding_mask int32 [1, 12]" in error
    assert "converts with builtin ops" in error and "from layer 'dropout' on" in error
    assert not (out / "tflite-dynamic").exists()


def _split(bert_dir, unfreeze_layers, sequence_length=16):
    model = _model(bert_dir, sequence_length=sequence_length)
    train = TrainConfig(unfreeze_layers=unfreeze_layers)
    set_phase_trainable(model, plan_phases(train)[1], train)
    return model, boundary.split_model(model)


def test_phase_2_cut_above_the_frozen_blocks_equals_the_classifier(bert_dir):
    model, split = _split(bert_dir, unfreeze_layers=2)
    assert split.layer == f"transformer_layer_{NUM_LAYERS - 2}"
    texts = tf.constant(["good film", "a dull, awful plot<br />dull", "", "zzz " * 30])
    assert boundary.max_difference(model, split, texts) <= 1e-5
    packed = split.bottom(texts).numpy()
    hidden_dim = model.get_layer("backbone").output_dim
    assert packed.shape == (4, 16, hidden_dim + 1)
    lengths = packed[..., -1].sum(1).astype(int)  # the mask channel: real tokens
    assert lengths[2] == 2 and lengths[3] == 16  # [CLS] [SEP]; truncated
    assert not packed[0, lengths[0]:].any()  # zeros past the text's end
    # The top trains the classifier's own blocks: one step moves both alike.
    assert len(split.top.trainable_weights) == len(model.trainable_weights)
    split.top.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    before = model(texts).numpy()
    split.top.train_on_batch(packed, np.array([1, 0, 1, 0]))
    after = model(texts).numpy()
    assert np.abs(after - before).max() > 1e-4
    assert boundary.max_difference(model, split, texts) <= 1e-5


@pytest.mark.parametrize("unfreeze_layers, reason", [
    (NUM_LAYERS, "every transformer block trains"),
    (NUM_LAYERS + 1, "embedding layers train in this phase"),
])
def test_no_transformer_cut_when_nothing_below_stays_fixed(bert_dir, unfreeze_layers, reason):
    with pytest.raises(boundary.NoBoundary, match=reason):
        _split(bert_dir, unfreeze_layers)


def test_bad_encoders_fail_with_clear_errors(bert_dir, tmp_path):
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "config.json").write_text('{"learning_rate": 0.1}')
    with pytest.raises(TransformerEncoderError, match=r"notes.* is not a model folder"):
        TransformerTextEncoder(str(not_a_model))
    with pytest.raises(ValueError, match=r"notes.* is not a model folder"):
        build_text_classifier(ModelConfig(text=TextConfig(encoder=str(not_a_model))), 2)
    with pytest.raises(TransformerEncoderError, match="Unknown keras-hub preset 'bert_tyni_en'"):
        TransformerTextEncoder("bert_tyni_en")
    with pytest.raises(ValueError, match="'bert_tyni_en'.*keras-hub preset name"):
        build_text_classifier(ModelConfig(text=TextConfig(encoder="bert_tyni_en")), 2)
    too_long = MAX_SEQUENCE_LENGTH + 1
    with pytest.raises(TransformerEncoderError,
                       match=rf"sequence_length={too_long} is over the maximum .*tiny-bert.* "
                             rf"\({MAX_SEQUENCE_LENGTH} positions\)"):
        text = TextConfig(encoder=str(bert_dir), sequence_length=too_long)
        build_text_classifier(ModelConfig(text=text), 2)
    with pytest.raises(TransformerEncoderError, match="pooling must be one of mean, cls"):
        TransformerTextEncoder(str(bert_dir), sequence_length=8, pooling="max")


def test_registry_lists_minilm_as_a_transformer(monkeypatch, tmp_path):
    spec = encoders.get_encoder("minilm")
    assert (spec.kind, spec.dim) == ("transformer", 384)
    monkeypatch.delenv("TFXFER_ASSETS", raising=False)
    assert encoders.transformer_preset("minilm") == encoders.MINILM_HANDLE
    staged = tmp_path / encoders.MINILM_ASSET
    staged.mkdir(parents=True)
    (staged / "config.json").write_text('{"model_type": "bert"}')
    monkeypatch.setenv("TFXFER_ASSETS", str(tmp_path))
    assert encoders.transformer_preset("minilm") == str(staged)
    assert encoders.transformer_preset("glove-6b-50d") is None
    assert encoders.transformer_preset("bert_tiny_en_uncased") == "bert_tiny_en_uncased"


def test_layerwise_rates_and_weight_decay_follow_the_blocks(bert_dir):
    model = _model(bert_dir)
    set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "top"), TrainConfig(unfreeze_layers=2))
    multipliers = layerwise_multipliers(model, decay=0.5, block=1)
    by_unit = {path.split("/")[0]: m for path, m in multipliers.items()}
    assert by_unit == {BLOCKS[-1]: 0.5, BLOCKS[-2]: 0.25}
    optimizer = make_optimizer("adamw", 1e-4, multipliers)
    decayed = {v.name for v in model.trainable_weights if optimizer._use_weight_decay(v)}
    assert "kernel" in decayed and not decayed & {"bias", "gamma", "beta"}


def test_test_split_is_predicted_shortest_first_and_answered_in_split_order(bert_dir, tmp_path):
    from tfxfer.config import DataConfig
    from tfxfer.data.sources import load_splits
    from tfxfer.evaluation import evaluate
    from tfxfer.experiment import evaluate_split

    rows = [(" ".join(["good film"] * (1 + (5 * i) % 6)), str(i % 2)) for i in range(24)]
    data = DataConfig(source=str(write_csv(tmp_path / "r.csv", rows)), batch_size=4,
                      val_fraction=0.0, test_fraction=0.5)
    splits = load_splits(data)
    texts = [t.decode() for t, _ in splits.raw["test"].as_numpy_iterator()]
    order = splits.length_order("test")
    assert [len(texts[i]) for i in order] == sorted(len(t) for t in texts)
    assert list(order) != list(range(len(texts)))  # the split is not already sorted
    model = _model(bert_dir, sequence_length=16)
    plain = evaluate(model, splits.batches("test", data), splits.class_names)
    sorted_first = evaluate_split(model, splits, "test", data, splits.class_names)
    np.testing.assert_array_equal(sorted_first.y_true, plain.y_true)
    np.testing.assert_allclose(sorted_first.y_prob, plain.y_prob, atol=1e-5)
    with pytest.raises(ValueError, match="permutation of the 12 indices of the test split"):
        splits.batches("test", data, order=order[:-1])

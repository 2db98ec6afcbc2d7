"""The hashed n-gram bag beside a word-vector encoder (`model.text.ngram_buckets`)."""

import json
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf
from text_helpers import NEUTRAL, build_tiny_encoder, write_csv

from tfxfer import cli, rundir
from tfxfer.config import ModelConfig, RunConfig, TextConfig
from tfxfer.text.model import build_text_classifier
from tfxfer.text.ngrams import NGRAMS, HashedNgrams, ngram_tokens


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny")


def test_tokens_are_the_words_then_their_bigrams():
    tokens = ngram_tokens(tf.constant(["Not good<br />film.", ""]), order=2).to_list()
    assert tokens == [[b"not", b"good", b"film", b".", b"not good", b"good film", b"film ."],
                      []]
    assert ngram_tokens(tf.constant(["a b c"]), order=3).to_list()[0][-1] == b"a b c"


def test_bigrams_tell_word_orders_apart_and_words_alone_do_not():
    texts = tf.constant(["great dull film", "dull great film", ""])
    words = HashedNgrams(buckets=97, dim=4, order=1)(texts).numpy()
    np.testing.assert_allclose(words[0], words[1], rtol=1e-6)
    grams = HashedNgrams(buckets=97, dim=4, order=2)(texts).numpy()
    assert not np.allclose(grams[0], grams[1])
    np.testing.assert_array_equal(grams[2], np.zeros(4))  # no tokens: zeros, not NaN


def test_the_output_is_the_mean_of_the_hashed_rows():
    layer = HashedNgrams(buckets=11, dim=3, order=2)
    out = layer(tf.constant(["good film"])).numpy()[0]
    ids = tf.strings.to_hash_bucket_fast(["good", "film", "good film"], 11).numpy()
    np.testing.assert_allclose(out, layer.embeddings.numpy()[ids].mean(0), rtol=1e-6)


@pytest.mark.parametrize("kwargs", [{"buckets": 0}, {"dim": 0}, {"order": 4}])
def test_bad_sizes_are_refused_with_what_was_received(kwargs):
    with pytest.raises(ValueError, match="Received"):
        HashedNgrams(**kwargs)


def test_config_refuses_negative_buckets_and_a_transformer_encoder():
    config = RunConfig(model=ModelConfig(text=TextConfig(ngram_buckets=-1)))
    with pytest.raises(ValueError, match="ngram_buckets must be >= 0.*Received: -1"):
        config.validate()
    with pytest.raises(ValueError, match="ngram_order 1, 2 or 3.*ngram_order=5"):
        RunConfig(model=ModelConfig(text=TextConfig(ngram_buckets=8, ngram_order=5))).validate()
    bert = ModelConfig(text=TextConfig(encoder="minilm", ngram_buckets=8))
    with pytest.raises(ValueError, match="sees word order itself"):
        build_text_classifier(bert, 2)


def _order_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Every text has the same words; the label is their order ("great dull" or "dull great")."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        pair = "great dull" if i % 2 else "dull great"
        filler = list(rng.choice(NEUTRAL[:4], 2))
        rows.append((" ".join([filler[0], pair, filler[1]]), "pos" if i % 2 else "neg"))
    return rows


def _main(encoder_dir, tmp_path, name, *flags) -> int:
    data = write_csv(tmp_path / "train.csv", _order_rows(120, 0))
    test = write_csv(tmp_path / "test.csv", _order_rows(40, 1))
    return cli.main(["train", "--data", str(data), "--test-data", str(test), "--encoder",
                     str(encoder_dir), "--out", str(tmp_path / name), "--strategy",
                     "feature_extraction", "--epochs", "15", "--learning-rate", "0.05",
                     "--batch-size", "8", "--verbose", "0", "--seed", "1", "--no-tensorboard",
                     *flags])


def _train(encoder_dir, tmp_path, name, *flags):
    assert _main(encoder_dir, tmp_path, name, *flags) == 0
    out = tmp_path / name
    return out, json.loads((out / rundir.METRICS).read_text())["accuracy"]


def test_the_ngram_bag_learns_word_order_that_the_encoder_cannot(encoder_dir, tmp_path, caplog):
    _, words_only = _train(encoder_dir, tmp_path, "words")
    with caplog.at_level(logging.INFO, logger="tfxfer"):
        out, with_ngrams = _train(encoder_dir, tmp_path, "ngrams", "--ngram-buckets", "256")
    assert words_only <= 0.6  # the same bag of words for both classes: chance
    assert with_ngrams == 1.0
    assert "Bottleneck cache off: the hashed n-gram bag" in caplog.text

    from tfxfer.serving.export import export_model

    model = keras.models.load_model(out / rundir.MODEL)
    assert model.get_layer(NGRAMS).trainable_weights  # part of the head: it trains
    texts = tf.constant(["film dull great plot", "the great dull movie"])
    expected = model.predict(texts, verbose=0)
    result = export_model(model, ["neg", "pos"], tmp_path / "serving", "order", warmup=False)
    served = tf.saved_model.load(str(result.path))
    answer = served.signatures["serving_default"](inputs=texts)["probabilities"].numpy()
    np.testing.assert_allclose(answer, expected, rtol=1e-5)
    assert expected.argmax(1).tolist() == [0, 1]


def test_bottleneck_cache_on_is_refused_for_an_ngram_model(encoder_dir, tmp_path, caplog):
    assert _main(encoder_dir, tmp_path, "on", "--ngram-buckets", "16",
                 "--bottleneck-cache", "on") == 2
    assert "cannot be honoured: the hashed n-gram bag" in caplog.text

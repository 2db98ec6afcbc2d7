"""The offline encoder builder, the encoder registry and the Keras 3 hub layer.

Every test builds a tiny TF-Hub-format SavedModel with tfxfer's own builder and
loads it through the real `tensorflow_hub` resolution path (no network).
"""

import gzip
import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from text_helpers import DIM, OOV_BUCKETS, WORDS, build_tiny_encoder, tiny_vectors

from tfxfer.config import ModelConfig, TextConfig, TrainConfig
from tfxfer.text import encoders
from tfxfer.text.glove import read_vectors_file
from tfxfer.text.hub_layer import HubTextEmbedding
from tfxfer.text.model import RANDOM_INIT_LIMIT, build_text_classifier
from tfxfer.text.savedmodel_builder import build_text_embedding, tokenize
from tfxfer.training.strategies import Phase, set_phase_trainable, trainable_backbone_layers
from tfxfer.training.trainer import fit_phases

TEXTS = tf.constant(["Good film!", "a dull, awful plot<br />", "", "zzz unknown words"])
LABELS = np.array([1, 0, 1, 0])


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    return build_tiny_encoder(tmp_path_factory.mktemp("encoder") / "tiny")


def _model(encoder_dir, hidden_units=0, **kwargs):
    config = ModelConfig(text=TextConfig(encoder=str(encoder_dir)), hidden_units=hidden_units,
                         dropout=0.0)
    return build_text_classifier(config, 2, **kwargs)


def _embeddings(model):
    return model.get_layer("backbone").weights[0].numpy().copy()


def test_tokenize_lowercases_splits_punctuation_and_drops_html_breaks():
    tokens = tokenize(tf.constant(["Don't<br /><br />it's GREAT!! Café 7/10", ""]))
    assert [t.decode() for t in tokens[0].numpy()] == [
        "do", "n't", "it", "'s", "great", "!", "!", "café", "7", "/", "10"]
    assert tokens[1].shape == (0,)


def test_saved_model_has_the_tf_hub_text_embedding_shape(encoder_dir):
    module = hub.load(hub.resolve(str(encoder_dir)))
    assert [v.shape for v in module.variables] == [(len(WORDS) + OOV_BUCKETS, DIM)]
    assert len(module.trainable_variables) == 1
    assert (encoder_dir / "assets" / "vocab.txt").read_text().split("\n")[:-1] == WORDS
    out = module(TEXTS).numpy()
    assert out.shape == (4, DIM) and not np.isnan(out).any()
    words, vectors = tiny_vectors()
    good, film, bang = (vectors[words.index(w)] for w in ("good", "film", "!"))
    np.testing.assert_allclose(out[0], (good + film + bang) / np.sqrt(3), rtol=1e-5)
    np.testing.assert_array_equal(out[2], np.zeros(DIM))  # no tokens: zeros
    np.testing.assert_array_equal(out[3], np.zeros(DIM))  # OOV rows start at zero


def test_builder_rejects_bad_vocabularies(tmp_path, encoder_dir):
    vectors = np.ones((2, 3))
    with pytest.raises(ValueError, match="duplicate"):
        build_text_embedding(["a", "a"], vectors, tmp_path / "d")
    with pytest.raises(ValueError, match="whitespace"):
        build_text_embedding(["a", "b c"], vectors, tmp_path / "w")
    with pytest.raises(ValueError, match="one vector per word"):
        build_text_embedding(["a"], vectors, tmp_path / "n")
    with pytest.raises(FileExistsError):
        build_text_embedding(["a", "b"], vectors, encoder_dir)
    assert not list(tmp_path.iterdir())  # nothing half-built left behind


def test_read_vectors_file_glove_and_word2vec(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.1 0.2\nGood 1 2\ngood 9 9\nbad -1 -2\n")
    words, vectors = read_vectors_file(glove)
    assert words == ["the", "good", "bad"]  # lower-cased; the first "good" wins
    np.testing.assert_array_equal(vectors[1], [1, 2])
    w2v = tmp_path / "vectors.vec.gz"
    with gzip.open(w2v, "wt") as f:
        f.write("3 2\nthe 0.1 0.2\ngood 1 2\nbad -1 -2\n")
    words, vectors = read_vectors_file(w2v, max_words=2)
    assert words == ["the", "good"] and vectors.shape == (2, 2)
    bad = tmp_path / "bad.txt"
    bad.write_text("the 0.1 0.2\ngood 1\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 2: expected a word and 2 values"):
        read_vectors_file(bad)
    bad.write_text("the 0.1 x\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 1"):
        read_vectors_file(bad)


def test_resolve_encoder_builds_a_vector_file_once(tmp_path, monkeypatch):
    words, vectors = tiny_vectors()
    path = tmp_path / "vectors.txt"
    path.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in zip(words, vectors)))
    cache = tmp_path / "cache"
    built = encoders.resolve_encoder(str(path), cache_dir=cache)
    saved_model = Path(built, "saved_model.pb")
    stamp = saved_model.stat().st_mtime_ns
    reads = []  # every time the vector file is read, i.e. the encoder is built
    monkeypatch.setattr(encoders, "read_vectors_file",
                        lambda *args: reads.append(args) or read_vectors_file(*args))

    assert encoders.resolve_encoder(str(path), cache_dir=cache) == built
    assert reads == [] and saved_model.stat().st_mtime_ns == stamp  # reused, not rebuilt

    # A rewritten file (new modification time) is a new encoder, built once more.
    file_stamp = path.stat()
    os.utime(path, ns=(file_stamp.st_atime_ns, file_stamp.st_mtime_ns + 10**9))
    rebuilt = encoders.resolve_encoder(str(path), cache_dir=cache)
    assert rebuilt != built and len(reads) == 1
    assert sorted(p.name for p in (cache / "encoders").iterdir()) == sorted(
        [Path(built).name, Path(rebuilt).name])
    assert hub.load(built)(tf.constant(["good"])).shape == (1, len(vectors[0]))


def test_registry_lists_names_and_rejects_unknown_handles(encoder_dir):
    names = [spec.name for spec in encoders.list_encoders()]
    assert names[0] == "glove_6b_50d" == ModelConfig().text.encoder
    # Names match ignoring case, "-" and "_", so the kebab-case spellings keep working.
    assert encoders.get_encoder("glove-6b-50d").name == "glove_6b_50d"
    assert encoders.get_encoder("nnlm-en-dim50").handle == "https://tfhub.dev/google/nnlm-en-dim50/2"
    with pytest.raises(ValueError, match="Valid text encoders: glove_6b_50d, .*TF-Hub handle"):
        encoders.resolve_encoder("glove-typo")
    assert encoders.resolve_encoder(str(encoder_dir)) == str(encoder_dir)


def test_layer_is_frozen_by_default_and_unfreezes_whole(encoder_dir):
    model = _model(encoder_dir, hidden_units=3)
    encoder = model.get_layer("backbone")
    assert isinstance(encoder, HubTextEmbedding) and encoder.output_dim == DIM
    assert [w.path for w in encoder.weights] == ["backbone/embeddings"]
    head = 4  # hidden kernel/bias, predictions kernel/bias
    assert len(model.trainable_weights) == head
    train = TrainConfig(unfreeze_layers=1)
    for unfreeze in ("top", "all"):
        set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, unfreeze), train)
        assert len(model.trainable_weights) == head + 1
    assert trainable_backbone_layers(model) == [encoder]
    set_phase_trainable(model, Phase("head", 1, 1e-3, "none"), train)
    assert len(model.trainable_weights) == head
    assert model.predict(TEXTS, verbose=0).shape == (4, 2)


class _Snapshots(keras.callbacks.Callback):
    def __init__(self, classifier):
        super().__init__()
        self.classifier, self.taken = classifier, []

    def on_train_end(self, logs=None):
        self.taken.append(_embeddings(self.classifier))


def test_gradients_reach_the_embedding_only_in_phase_2(encoder_dir):
    model = _model(encoder_dir)
    before, head_before = _embeddings(model), model.get_layer("predictions").get_weights()[0]
    snapshots = _Snapshots(model)
    data = tf.data.Dataset.from_tensor_slices((TEXTS, LABELS)).batch(2)
    train = TrainConfig(strategy="fine_tune_all", epochs=1, fine_tune_epochs=1,
                        learning_rate=0.1, fine_tune_learning_rate=0.01, verbose=0)
    history = fit_phases(model, data, None, train, callbacks=[snapshots])
    assert [p.name for p in history.phases] == ["head", "fine_tune"]
    assert [p.trainable_weights for p in history.phases] == [2, 3]
    np.testing.assert_array_equal(snapshots.taken[0], before)  # phase 1: frozen
    assert not np.allclose(model.get_layer("predictions").get_weights()[0], head_before)
    changed = np.flatnonzero(np.abs(snapshots.taken[1] - before).sum(axis=1))
    assert len(changed) > 0  # phase 2 moved the rows of the words seen in training
    assert set(changed) <= {WORDS.index(w) for w in ("good", "film", "!", "dull", "awful",
                                                      "plot")} | set(range(len(WORDS), 20))


def test_embedding_gradient_is_sparse(encoder_dir):
    model = _model(encoder_dir)
    model.get_layer("backbone").trainable = True
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(TEXTS, training=True))
    grad = tape.gradient(loss, model.get_layer("backbone").trainable_weights[0].value)
    assert isinstance(grad, tf.IndexedSlices)  # only the looked-up rows


def test_keras_round_trip_keeps_fine_tuned_weights(encoder_dir, tmp_path):
    model = _model(encoder_dir, hidden_units=3)
    model.get_layer("backbone").trainable = True
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="sparse_categorical_crossentropy")
    model.fit(TEXTS, LABELS, epochs=2, verbose=0)
    assert not np.allclose(_embeddings(model)[: len(WORDS)], tiny_vectors()[1])
    expected = model.predict(TEXTS, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(TEXTS, verbose=0), expected, rtol=1e-6)
    assert reloaded.get_layer("backbone").get_config()["handle"] == str(encoder_dir)


def test_export_round_trip_takes_strings(encoder_dir, tmp_path):
    from tfxfer.serving.export import export_model
    from tfxfer.serving.export.checks import check_ops

    model = _model(encoder_dir)
    expected = model.predict(TEXTS, verbose=0)
    model.export(tmp_path / "plain", verbose=False)
    plain = tf.saved_model.load(str(tmp_path / "plain"))  # kept: its functions need it
    np.testing.assert_allclose(plain.serve(TEXTS).numpy(), expected, rtol=1e-6)
    check_ops(tmp_path / "plain")  # no py_function: TF Serving can run it

    result = export_model(model, ["neg", "pos"], tmp_path / "serving", "reviews", warmup=False)
    assert result.modality == "text"
    assert (result.path / "assets" / "vocab.txt").is_file()
    served = tf.saved_model.load(str(result.path))
    outputs = served.signatures["serving_default"](inputs=TEXTS)
    np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, rtol=1e-6)


def test_from_scratch_reinitialises_the_embedding(encoder_dir):
    model = _model(encoder_dir, from_scratch=True, seed=3)
    table = _embeddings(model)
    assert np.abs(table).max() <= RANDOM_INIT_LIMIT and np.abs(table).max() > 0
    assert table.shape == (len(WORDS) + OOV_BUCKETS, DIM)
    pretrained = _embeddings(_model(encoder_dir))
    assert not np.allclose(pretrained[: len(WORDS)], table[: len(WORDS)])

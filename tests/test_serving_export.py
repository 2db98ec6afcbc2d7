"""Export to TF Serving: signatures, fresh-process round trip, labels, size, warmup, versions.

One module-scoped fixture exports a tiny image run (MobileNet alpha 0.25, 32 px,
random weights, saved with Adam state as `tfxfer train` saves it) and a real
tfxfer text run (`tfxfer.experiment.train` on a CSV with a tiny TF-Hub-format
encoder, fine-tuned), then verifies both with one TensorFlow-only subprocess and
`saved_model_cli`, so the expensive processes start once.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_image_folder, spread_backbone_weights, tiny_config
from saved_model_oracles import checkpoint_tensor_bytes, keras_variable_bytes
from tensorflow_serving.apis import prediction_log_pb2
from text_helpers import build_tiny_encoder, review_rows, write_csv

import tfxfer
from tfxfer import cli, rundir
from tfxfer.config import load_config
from tfxfer.data.pipeline import decode_image
from tfxfer.experiment import train
from tfxfer.image.model import build_image_classifier
from tfxfer.serving import client, contract
from tfxfer.serving.contract import (
    DEFAULT_SIGNATURE,
    INPUT_KEY,
    OUTPUTS,
    PIXELS_KEY,
    PIXELS_SIGNATURE,
    PROBABILITIES,
    read_warmup,
)
from tfxfer.serving.export import ExportError, export_model, export_run, layout, verify
from tfxfer.serving.export.checks import check_variables_size, graph_ops
from tfxfer.serving.export.samples import TEXT_SAMPLES
from tfxfer.serving.export.verify import (
    VerificationError,
    VerifyCase,
    expected_signatures,
    reference_probabilities,
    verify_saved_models,
)

IMAGE_SIZE = 32
TEXT_LABELS = ["negative", "neutral", "positive"]
VOCABULARY = ["good", "bad", "film", "great", "dull", "fine", "story", "long"]


def _image_run(run_dir, images):
    """A run directory as `tfxfer train` leaves it (model.keras with optimizer state)."""
    keras.utils.set_random_seed(0)
    config = tiny_config(images, run_dir)
    class_names = sorted(p.name for p in images.iterdir())
    files = sorted(images.rglob("*.jpg"))
    model = build_image_classifier(config.model, len(class_names))
    spread_backbone_weights(model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)  # Adam state, saved in model.keras
    run_dir.mkdir()
    (run_dir / rundir.CONFIG).write_text(json.dumps(config.to_dict()))
    (run_dir / rundir.LABELS).write_text("".join(f"{n}\n" for n in class_names))
    (run_dir / rundir.SPLITS).write_text("split,path,label\n" + "".join(
        f"test,{f},{f.parent.name}\n" for f in files[:3]))
    rundir.save_model(run_dir, model)
    return run_dir, files[:3]


def _text_run(root):
    """A real text run: tiny TF-Hub-format encoder, CSV reviews, two phases."""
    encoder = build_tiny_encoder(root / "encoder")
    reviews = write_csv(root / "reviews.csv", review_rows(24))
    config = load_config(overrides={
        "data": {"source": str(reviews), "batch_size": 4, "seed": 1, "val_fraction": 0.2,
                 "test_fraction": 0.2},
        "model": {"text": {"encoder": str(encoder)}, "hidden_units": 4},
        "train": {"strategy": "fine_tune", "epochs": 1, "fine_tune_epochs": 1, "verbose": 0,
                  "tensorboard": False, "learning_rate": 0.05},
        "out": str(root / "text_run"),
    })
    return train(config).run_dir


def _text_model(input_shape=(1,)):
    """A tiny string-in classifier: vocabulary lookup, embedding, mean, softmax."""
    inputs = keras.Input(shape=input_shape, dtype="string", name="text")
    x = keras.layers.TextVectorization(max_tokens=16, output_sequence_length=6,
                                       vocabulary=VOCABULARY)(inputs)
    spread = keras.initializers.RandomNormal(stddev=1.0, seed=0)  # non-uniform outputs
    x = keras.layers.Embedding(16, 4, embeddings_initializer=spread)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(len(TEXT_LABELS), activation="softmax",
                                 name="predictions")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    images = make_image_folder(root / "images", per_class=2)
    run_dir, files = _image_run(root / "run", images)
    base = root / "saved_models"
    image = export_run(run_dir, base, "flowers")
    _, image_model, class_names = rundir.load_run(run_dir)
    samples = [f.read_bytes() for f in files]

    text_run = _text_run(root)
    text = export_run(text_run, base, "reviews")
    _, text_model, text_labels = rundir.load_run(text_run)
    cases = [
        VerifyCase(image.path, samples,
                   reference_probabilities(image_model, samples, IMAGE_SIZE),
                   class_names, "image", 3),
        VerifyCase(text.path, list(TEXT_SAMPLES),
                   reference_probabilities(text_model, TEXT_SAMPLES, None),
                   text_labels, "text", 2),
    ]
    image_report, text_report = verify_saved_models(cases)
    return SimpleNamespace(
        expected={"image": cases[0].expected, "text": cases[1].expected},
        root=root, base=base, run_dir=run_dir, files=files, samples=samples,
        image=image, image_model=image_model, class_names=class_names,
        image_report=image_report, text=text, text_model=text_model, text_labels=text_labels,
        text_report=text_report,
    )


def test_tf_serving_layout(exported):
    assert exported.text_labels == ["neg", "pos"]
    for result, labels in ((exported.image, exported.class_names),
                           (exported.text, exported.text_labels)):
        assert result.path == exported.base / result.path.parent.name / "1"
        assert result.version == 1
        assert (result.path / "saved_model.pb").is_file()
        assert (result.path / "variables" / "variables.index").is_file()
        assert (result.path / "assets" / "labels.txt").read_text().splitlines() == labels
        assert (result.path / "assets.extra" / "tf_serving_warmup_requests").is_file()
        assert not list(result.path.parent.glob(f"{layout.TEMP_PREFIX}*"))
    assert exported.image.modality == "image" and exported.text.modality == "text"
    assert exported.image.signatures == [DEFAULT_SIGNATURE, PIXELS_SIGNATURE]
    assert exported.text.signatures == [DEFAULT_SIGNATURE]


def test_signature_names_dtypes_and_shapes(exported):
    image = exported.image_report.signatures
    assert image[DEFAULT_SIGNATURE]["inputs"] == {INPUT_KEY: {"dtype": "string", "shape": [-1]}}
    assert image[PIXELS_SIGNATURE]["inputs"] == {
        PIXELS_KEY: {"dtype": "uint8", "shape": [-1, -1, -1, 3]}}
    outputs = image[DEFAULT_SIGNATURE]["outputs"]
    assert sorted(outputs) == sorted(OUTPUTS)
    assert outputs[PROBABILITIES] == {"dtype": "float32", "shape": [-1, 3]}
    assert outputs["class_name"] == {"dtype": "string", "shape": [-1]}
    assert outputs["top_k_class_names"] == {"dtype": "string", "shape": [-1, 3]}
    assert exported.text_report.signatures == expected_signatures("text", 2, 2)


def test_fresh_process_matches_the_keras_model(exported):
    # The reported difference, recomputed from the export loaded in this process.
    for kind, report, inputs in (("image", exported.image_report, exported.samples),
                                 ("text", exported.text_report, list(TEXT_SAMPLES))):
        rows = client.predict_local(report.saved_model, inputs)
        served = np.asarray([r[PROBABILITIES] for r in rows], dtype=np.float32)
        difference = float(np.abs(served - exported.expected[kind]).max())
        assert report.examples == len(inputs) == 3
        assert difference < 1e-5
        assert report.max_abs_diff == pytest.approx(difference, abs=1e-7)
    # The comparison means something only if outputs vary with the input.
    for expected in exported.expected.values():
        assert np.abs(expected - 1 / expected.shape[1]).max() > 0.05
        assert np.ptp(expected, axis=0).max() > 0.01


def test_saved_model_cli_lists_the_signatures(exported):
    assert exported.image_report.cli_signatures == [DEFAULT_SIGNATURE, PIXELS_SIGNATURE]
    assert exported.text_report.cli_signatures == [DEFAULT_SIGNATURE]
    assert "Method name is: tensorflow/serving/predict" in exported.image_report.cli_output
    assert "DT_STRING" in exported.text_report.cli_output


def test_labels_are_looked_up_in_the_graph(exported):
    rows = client.predict_local(exported.image.path, exported.samples)
    expected = reference_probabilities(exported.image_model, exported.samples, IMAGE_SIZE)
    for row, probabilities in zip(rows, expected):
        best = int(np.argmax(probabilities))
        assert row["class_id"] == best
        assert row["class_name"] == exported.class_names[best]
        assert row["top_k_class_names"][0] == exported.class_names[best]
        assert sorted(row["top_k_class_names"]) == sorted(exported.class_names)
        np.testing.assert_allclose(row[PROBABILITIES], probabilities, atol=1e-5)


def test_pixels_signature_takes_decoded_images(exported):
    loaded = tf.saved_model.load(str(exported.image.path))
    images = tf.stack([decode_image(s, IMAGE_SIZE) for s in exported.samples])
    served = loaded.signatures[PIXELS_SIGNATURE](images=images)
    expected = exported.image_model(images, training=False)
    np.testing.assert_allclose(served[PROBABILITIES].numpy(), expected.numpy(), atol=1e-5)


def test_variables_are_written_once(exported, tmp_path):
    # The checkpoint holds the model's arrays, each once (counted from both sides). The text
    # encoder is a tf.train.Checkpoint: its int64 save_counter is state Keras does not see.
    for result, model, extra in ((exported.image, exported.image_model, 0),
                                 (exported.text, exported.text_model, 8)):
        assert checkpoint_tensor_bytes(result.path) == keras_variable_bytes(model) + extra
        assert result.weights_bytes == sum(np.asarray(w).nbytes for w in model.weights)
    # The model reloaded from model.keras carries Adam state (2 slots per weight): tracking
    # the model object, as a plain export does, would write it too. The check catches that.
    model = exported.image_model
    assert exported.image.weights_bytes > 500_000 and model.optimizer.variables
    tf.train.Checkpoint(model=model).write(str(tmp_path / "naive" / "variables" / "variables"))
    with pytest.raises(ExportError, match="written more than once"):
        check_variables_size(tmp_path / "naive", exported.image.weights_bytes)


def test_warmup_file_holds_prediction_logs(exported):
    records = read_warmup(exported.image.path)
    assert len(records) == 4  # one per sample, then all three in one batch
    for record in records:
        assert isinstance(record, prediction_log_pb2.PredictionLog)
        assert record.WhichOneof("log_type") == "predict_log"
        assert record.predict_log.request.model_spec.name == "flowers"
        assert record.predict_log.request.model_spec.signature_name == DEFAULT_SIGNATURE
    sent = [list(r.predict_log.request.inputs[INPUT_KEY].string_val) for r in records]
    assert sent == [[s] for s in exported.samples] + [exported.samples]
    text = read_warmup(exported.text.path)
    assert [v.decode() for v in text[-1].predict_log.request.inputs[INPUT_KEY].string_val] == \
        list(TEXT_SAMPLES)


def test_versions_count_up_and_are_never_overwritten(exported):
    model_dir = exported.base / "reviews"
    labels = exported.text_labels
    second = export_model(exported.text_model, labels, exported.base, "reviews", warmup=False)
    assert second.version == 2 and second.path == model_dir / "2"
    before = (model_dir / "1" / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="Version 1 already exists"):
        export_model(exported.text_model, labels, exported.base, "reviews", version=1,
                     warmup=False)
    assert (model_dir / "1" / "saved_model.pb").stat().st_mtime_ns == before
    assert contract.list_versions(model_dir) == [1, 2]
    assert not list(model_dir.glob(f"{layout.TEMP_PREFIX}*"))


def test_text_model_with_a_string_column_input(tmp_path):
    model = _text_model(input_shape=(1,))  # [batch, 1] strings; the run's model takes [batch]
    result = export_model(model, TEXT_LABELS, tmp_path, "column", warmup=False, top_k=2)
    rows = client.predict_local(result.path, list(TEXT_SAMPLES))
    expected = reference_probabilities(model, TEXT_SAMPLES, None)
    np.testing.assert_allclose([r[PROBABILITIES] for r in rows], expected, atol=1e-5)
    assert np.abs(expected - 1 / 3).max() > 0.05
    assert all(len(r["top_k_class_names"]) == 2 for r in rows)


class _Vocabulary(tf.Module):
    """Strings -> embedding rows through a lookup table: a TF-Hub-style text module."""

    def __init__(self, words, dim):
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(words, tf.range(len(words), dtype=tf.int64)),
            default_value=len(words))
        self.embeddings = tf.Variable(tf.random.stateless_normal([len(words) + 1, dim], [1, 2]))

    def __call__(self, text):
        return tf.gather(self.embeddings, self.table.lookup(tf.strings.lower(text)))


class _ModuleLayer(keras.layers.Layer):
    """Holds a tf.Module and a Keras variable wrapping the module's own tf.Variable."""

    def __init__(self, module, **kwargs):
        super().__init__(**kwargs)
        self.module = module
        self.wrapped = [keras.Variable(initializer=module.embeddings, name="embeddings")]
        self._track_variable(self.wrapped[0])

    def call(self, text):
        return self.module(text)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.module.embeddings.shape[1])


def test_a_wrapped_module_variable_is_written_once(tmp_path):
    words = [f"w{i}" for i in range(3000)]
    layer = _ModuleLayer(_Vocabulary(words, 64))
    assert layer.wrapped[0].value is layer.module.embeddings  # one tensor, two objects
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(layer(inputs)))

    result = export_model(model, TEXT_LABELS, tmp_path, "wrapped", warmup=False)

    shapes = tf.train.load_checkpoint(str(result.path / "variables" / "variables")) \
        .get_variable_to_shape_map().values()
    assert [list(s) for s in shapes].count([3001, 64]) == 1
    assert checkpoint_tensor_bytes(result.path) == keras_variable_bytes(model)
    texts = ["w1 is", "W2", "unknown"]
    rows = client.predict_local(result.path, texts)
    expected = model(tf.constant(texts)).numpy()
    np.testing.assert_allclose([r[PROBABILITIES] for r in rows], expected, atol=1e-6)


class _PythonCallback(keras.layers.Layer):
    def call(self, x):
        y = tf.py_function(lambda t: t * 2.0, [x], tf.float32)
        y.set_shape(x.shape)
        return y

    def compute_output_shape(self, input_shape):
        return input_shape


def test_python_callbacks_fail_the_export(tmp_path):
    inputs = keras.Input(shape=(1,), dtype="string")
    x = keras.layers.Hashing(8, output_mode="one_hot")(inputs)
    x = _PythonCallback()(keras.ops.cast(x, "float32"))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    with pytest.raises(ExportError, match="EagerPyFunc \\(from tf.py_function\\)"):
        export_model(model, ["a", "b"], tmp_path, "bad", warmup=False)
    assert list((tmp_path / "bad").iterdir()) == []


def test_export_rejects_mismatched_labels_and_models(tmp_path):
    with pytest.raises(ExportError, match="predicts 3 classes but 2 labels"):
        export_model(_text_model(), ["a", "b"], tmp_path, "m", warmup=False)
    numbers = keras.Input(shape=(4,))
    model = keras.Model(numbers, keras.layers.Dense(2, activation="softmax")(numbers))
    with pytest.raises(ExportError, match="Cannot tell the model's modality"):
        export_model(model, ["a", "b"], tmp_path, "m", warmup=False)
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").iterdir())


def test_export_reads_modality_with_the_shared_rule():
    """The export's modality is `tfxfer.modality.modality_of`, its error an ExportError."""
    from tfxfer.modality import ModalityError
    from tfxfer.serving.export.introspect import export_modality

    two = [keras.Input(shape=(4,)), keras.Input(shape=(4,))]
    model = keras.Model(two, keras.layers.Concatenate()(two))
    with pytest.raises(ExportError, match="single-input models are supported") as error:
        export_modality(model)
    assert isinstance(error.value.__cause__, ModalityError)


def test_graph_ops_include_decoding_and_lookup(exported):
    ops = graph_ops(exported.image.path)
    assert {"DecodeImage", "LookupTableFindV2", "TopKV2"} <= set(ops)
    assert "HashTableV2" in ops and "InitializeTableFromTextFileV2" in ops


def test_export_and_predict_commands(exported, capsys):
    # The fixture verified exports through the API; here the CLI wiring of each flag.
    args = cli.build_parser().parse_args(["export", "RUN", "--name", "flowers", "--verify",
                                          "--version", "3", "--top-k", "2", "--no-warmup"])
    assert (args.verify, args.version, args.top_k, args.no_warmup) == (True, 3, 2, True)
    code = cli.main(["export", str(exported.run_dir), "--name", "flowers", "--base",
                     str(exported.base), "--top-k", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"to {exported.base / 'flowers' / '2'}" in out
    assert "signatures: serving_default, serving_pixels" in out
    assert "warmup records: 4" in out

    files = [str(f) for f in exported.files]
    assert cli.main(["predict", "--saved-model", str(exported.base / "flowers"), "--json",
                     *files]) == 0
    records = json.loads(capsys.readouterr().out)  # the latest version: top-2
    assert [r["input"] for r in records] == files
    assert all(r["class_name"] in exported.class_names for r in records)
    assert all(len(r["top_k"]) == 2 for r in records)

    assert cli.main(["predict", "--saved-model", str(exported.text.path),
                     "--text", "a good film"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["input", "class"] and "a good film" in table[1]

    assert cli.main(["export", str(exported.run_dir), "--name", "flowers", "--base",
                     str(exported.base), "--version", "1"]) == 2
    assert cli.main(["predict", "--rest", "http://localhost:1", *files]) == 2
    assert cli.main(["predict", "--rest", "http://127.0.0.1:9", "--model", "flowers",
                     *files]) == 1


# ---------------------------------------------------------------- verification fails


@pytest.fixture(scope="module")
def text_export(tmp_path_factory):
    """A tiny text classifier and its export (top-k 2), not verified."""
    model = _text_model()
    result = export_model(model, TEXT_LABELS, tmp_path_factory.mktemp("verify"), "reviews",
                          warmup=False, top_k=2)
    return model, result


def _text_case(model, result, **changes) -> VerifyCase:
    fields = {"saved_model": result.path, "inputs": list(TEXT_SAMPLES),
              "expected": reference_probabilities(model, TEXT_SAMPLES, None),
              "class_names": TEXT_LABELS, "modality": "text", "top_k": 2}
    return VerifyCase(**{**fields, **changes})


def test_verification_fails_when_the_export_is_not_the_keras_model(text_export):
    model, result = text_export
    other = _text_model()  # same architecture, another random head: other probabilities
    differ = np.abs(reference_probabilities(other, TEXT_SAMPLES, None)
                    - reference_probabilities(model, TEXT_SAMPLES, None)).max()
    assert differ > 1e-3
    with pytest.raises(VerificationError, match="differ from the Keras model by"):
        verify_saved_models([_text_case(other, result)], cli=False)


def test_a_difference_just_over_the_tolerance_blocks_publishing(tmp_path, monkeypatch):
    model = _text_model()
    real = verify.reference_probabilities
    monkeypatch.setattr(verify, "reference_probabilities",
                        lambda *args: real(*args) + 2 * verify.TOLERANCE)
    with pytest.raises(VerificationError, match=r"differ from the Keras model by 2e-05 "
                                                r"\(> 1e-05\)"):
        export_model(model, TEXT_LABELS, tmp_path, "reviews", samples=list(TEXT_SAMPLES),
                     verify=True)
    assert list((tmp_path / "reviews").iterdir()) == []  # no version, no temporary directory


def test_verification_fails_on_a_signature_of_the_wrong_shape(text_export):
    model, result = text_export
    case = _text_case(model, result, top_k=3)  # the export returns the top 2
    with pytest.raises(VerificationError, match="signature 'serving_default' is .*"
                                                r"'top_k_class_ids': \{'dtype': 'int64', "
                                                r"'shape': \[-1, 2\]\}"):
        verify_saved_models([case], cli=False)


def test_verification_fails_when_the_child_process_imports_tfxfer(text_export, tmp_path,
                                                                   monkeypatch):
    model, result = text_export
    wrapper = tmp_path / "child.py"
    root = Path(tfxfer.__file__).parents[1]
    wrapper.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "import tfxfer  # as a child that loaded library code would\n"
        f"runpy.run_path({str(verify.CHILD_SCRIPT)!r}, run_name='__main__')\n")
    monkeypatch.setattr(verify, "CHILD_SCRIPT", wrapper)
    with pytest.raises(VerificationError, match="imported tfxfer"):
        verify_saved_models([_text_case(model, result)], cli=False)

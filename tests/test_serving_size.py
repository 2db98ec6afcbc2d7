"""Export sizes of real-sized models: the size table of bench/README.md (prints it, asserts ratios).

MobileNetV2 (224 px, 5 classes, random weights), reloaded from `.keras` with Adam
state as `tfxfer train` leaves it, three ways:

    naive    tf.saved_model.save of a module holding the model (its optimizer comes along)
    keras    model.export() (Keras' ExportArchive: every variable twice)
    tfxfer   export_model (every variable once)

and a text classifier on the default offline GloVe encoder (a TF-Hub-format module
whose variables the layer also wraps as Keras variables), Keras vs tfxfer.

The sizes are compared with the bytes of the Keras model's own arrays and with the
tensors actually stored in each checkpoint (`saved_model_oracles`), not with the
exporter's `weights_bytes`. Verification is tested in test_serving_export.py, so the
exports here skip it (and warmup) to stay in the default run.

Print the table with `python -m pytest -s tests/test_serving_size.py`.
"""

import keras
import numpy as np
import tensorflow as tf
from saved_model_oracles import checkpoint_tensor_bytes, checkpoint_tensors, keras_variable_bytes

from tfxfer.config import ImageConfig, ModelConfig, TextConfig
from tfxfer.image.model import build_image_classifier
from tfxfer.serving.export import export_model
from tfxfer.serving.export.checks import directory_bytes

# The checkpoint's index and the data file's alignment: a little over the tensors.
INDEX_ALLOWANCE = 64 * 1024


def _as_a_run_leaves_it(model, tmp_path):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "model.keras")
    return keras.models.load_model(tmp_path / "model.keras")


def _assert_each_variable_stored_once(model, saved_model_dir, extra=()):
    stored = sorted(tuple(t.shape) for t in checkpoint_tensors(saved_model_dir).values())
    held = sorted([tuple(v.shape) for v in {id(v): v for v in model.variables}.values()]
                  + list(extra))
    assert stored == held  # one tensor per variable: no copy, no optimizer slot


def test_mobilenet_v2_export_writes_each_variable_once(tmp_path):
    config = ModelConfig(image=ImageConfig(backbone="mobilenet_v2", weights=None))
    model = build_image_classifier(config, 5)
    model = _as_a_run_leaves_it(model, tmp_path)
    arrays = keras_variable_bytes(model)
    assert model.optimizer.variables and arrays > 8e6

    naive = tf.Module()
    naive.model = model
    naive.state = list(model.variables)  # seed generators are not reachable from the model
    serve = tf.function(lambda images: model(images, training=False),
                        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    tf.saved_model.save(naive, str(tmp_path / "naive"), signatures=serve.get_concrete_function())
    model.export(str(tmp_path / "keras"), verbose=False)
    result = export_model(model, list("abcde"), tmp_path / "saved_models", "mnv2",
                          warmup=False)

    paths = {"naive": tmp_path / "naive", "keras": tmp_path / "keras", "tfxfer": result.path}
    sizes = {name: directory_bytes(path / "variables") for name, path in paths.items()}
    print(f"\nweights {arrays / 1e6:.2f} MB; variables/ (whole SavedModel):")
    for name, path in paths.items():
        print(f"  {name:<7} {sizes[name] / 1e6:6.2f} MB ({directory_bytes(path) / 1e6:6.2f} MB)")

    _assert_each_variable_stored_once(model, result.path)
    assert checkpoint_tensor_bytes(result.path) == arrays
    assert result.variables_bytes == sizes["tfxfer"] <= arrays + INDEX_ALLOWANCE
    assert sizes["keras"] > 1.9 * arrays
    assert sizes["naive"] > 2.9 * arrays  # weights + Adam's two slots


def test_glove_text_export_writes_the_embedding_once(tmp_path):
    from tfxfer.text.model import build_text_classifier

    model = build_text_classifier(ModelConfig(text=TextConfig(encoder="glove-6b-50d")), 2)
    model = _as_a_run_leaves_it(model, tmp_path)
    arrays = keras_variable_bytes(model)

    model.export(str(tmp_path / "keras"), verbose=False)
    result = export_model(model, ["neg", "pos"], tmp_path / "saved_models", "glove",
                          warmup=False)
    keras_bytes = directory_bytes(tmp_path / "keras" / "variables")
    print(f"\nGloVe text classifier: weights {arrays / 1e6:.2f} MB; variables/ keras "
          f"{keras_bytes / 1e6:.2f} MB, tfxfer {result.variables_bytes / 1e6:.2f} MB")

    embedding = max((t for t in checkpoint_tensors(result.path).values()), key=np.size)
    assert embedding.shape[1] == 50 and embedding.shape[0] > 100_000  # the GloVe table, once
    # The encoder is a tf.train.Checkpoint: its int64 save_counter is state Keras does not see.
    _assert_each_variable_stored_once(model, result.path, extra=[()])
    assert checkpoint_tensor_bytes(result.path) == arrays + np.dtype("int64").itemsize
    assert result.variables_bytes <= arrays + INDEX_ALLOWANCE
    assert keras_bytes > 1.9 * arrays

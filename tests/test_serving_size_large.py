"""Export sizes of real-sized models (prints them; asserts the ratios).

MobileNetV2 (224 px, 5 classes, random weights), reloaded from `.keras` with Adam
state as `tfxfer train` leaves it, three ways:

    naive    tf.saved_model.save of a module holding the model (its optimizer comes along)
    keras    model.export() (Keras' ExportArchive: every variable twice)
    tfxfer   export_model (every variable once)

and a text classifier on the default offline GloVe encoder (a TF-Hub-format module
whose variables the layer also wraps as Keras variables), Keras vs tfxfer.

Run with `python -m pytest -m large -s tests/test_serving_size_large.py`.
"""

import pytest
import tensorflow as tf

from tfxfer.config import ModelConfig
from tfxfer.models import build_image_classifier
from tfxfer.serving.export import export_model
from tfxfer.serving.export.checks import directory_bytes
from tfxfer.serving.export.introspect import weights_bytes
from tfxfer.serving.export.samples import TEXT_SAMPLES, synthetic_images

pytestmark = pytest.mark.large


def test_mobilenet_v2_export_writes_each_variable_once(tmp_path):
    import keras

    model = build_image_classifier(ModelConfig(backbone="mobilenet_v2", weights=None), 5)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "model.keras")
    model = keras.models.load_model(tmp_path / "model.keras")
    weights = weights_bytes(model)

    naive = tf.Module()
    naive.model = model
    naive.state = list(model.variables)  # seed generators are not reachable from the model
    serve = tf.function(lambda images: model(images, training=False),
                        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    tf.saved_model.save(naive, str(tmp_path / "naive"), signatures=serve.get_concrete_function())
    model.export(str(tmp_path / "keras"), verbose=False)
    result = export_model(model, list("abcde"), tmp_path / "saved_models", "mnv2",
                          samples=synthetic_images(2), verify=True)

    sizes = {
        "naive": directory_bytes(tmp_path / "naive" / "variables"),
        "keras": directory_bytes(tmp_path / "keras" / "variables"),
        "tfxfer": result.variables_bytes,
    }
    totals = {
        "naive": directory_bytes(tmp_path / "naive"),
        "keras": directory_bytes(tmp_path / "keras"),
        "tfxfer": directory_bytes(result.path),
    }
    print(f"\nweights {weights / 1e6:.2f} MB; variables/ (whole SavedModel):")
    for name in sizes:
        print(f"  {name:<7} {sizes[name] / 1e6:6.2f} MB ({totals[name] / 1e6:6.2f} MB)")
    print(f"  verified: max |diff| {result.verification.max_abs_diff:.3g}")

    assert sizes["tfxfer"] <= 1.02 * weights + 64 * 1024
    assert sizes["keras"] > 1.9 * weights
    assert sizes["naive"] > 2.9 * weights


def test_glove_text_export_writes_the_embedding_once(tmp_path):
    import keras

    from tfxfer.text.model import build_text_classifier

    model = build_text_classifier(ModelConfig(encoder="glove-6b-50d"), 2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "model.keras")
    model = keras.models.load_model(tmp_path / "model.keras")
    weights = weights_bytes(model)

    model.export(str(tmp_path / "keras"), verbose=False)
    result = export_model(model, ["neg", "pos"], tmp_path / "saved_models", "glove",
                          samples=list(TEXT_SAMPLES), verify=True)
    keras_bytes = directory_bytes(tmp_path / "keras" / "variables")
    print(f"\nGloVe text classifier: weights {weights / 1e6:.2f} MB; variables/ keras "
          f"{keras_bytes / 1e6:.2f} MB, tfxfer {result.variables_bytes / 1e6:.2f} MB")

    assert result.variables_bytes <= 1.02 * weights + 64 * 1024
    assert keras_bytes > 1.9 * weights
    assert result.verification.max_abs_diff <= 1e-5

"""tfxfer: transfer learning with Keras 3 and TensorFlow.

The public API is imported lazily, so `import tfxfer` (and `tfxfer --help`)
does not load TensorFlow until a name that needs it is used.

Example (a notebook; see docs/python-api.md):
    import tfxfer
    clf = tfxfer.fit("photos/", backbone="mobilenet_v2", epochs=3)
    clf.evaluate(), clf.predict(["photos/roses/1.jpg"]), clf.export("saved_models")

Example (a script, step by step):
    config = tfxfer.load_config("apps/flowers/config.yaml", {"train": {"epochs": 2}})
    result = tfxfer.train(config)
"""

from tfxfer.utils.lazy import lazy_getattr

__version__ = "0.1.0"

_EXPORTS = {
    "BackboneSpec": "tfxfer.image.backbones",
    "build_backbone": "tfxfer.image.backbones",
    "get_backbone": "tfxfer.image.backbones",
    "list_backbones": "tfxfer.image.backbones",
    "register_backbone": "tfxfer.image.backbones",
    "AdaptationConfig": "tfxfer.config",
    "DataConfig": "tfxfer.config",
    "ImageConfig": "tfxfer.config",
    "ModelConfig": "tfxfer.config",
    "TextConfig": "tfxfer.config",
    "RunConfig": "tfxfer.config",
    "TrainConfig": "tfxfer.config",
    "load_config": "tfxfer.config",
    "Splits": "tfxfer.data",
    "load_splits": "tfxfer.data",
    "modality_of": "tfxfer.modality",
    "Evaluation": "tfxfer.evaluation",
    "evaluate": "tfxfer.evaluation",
    "Experiment": "tfxfer.experiment",
    "build_classifier": "tfxfer.experiment",
    "evaluate_run": "tfxfer.experiment",
    "train": "tfxfer.experiment",
    "build_image_classifier": "tfxfer.image.model",
    "export_run_tflite": "tfxfer.lite.export",
    "export_tflite": "tfxfer.lite.export",
    "load_run": "tfxfer.rundir",
    "export_model": "tfxfer.serving.export",
    "export_run": "tfxfer.serving.export",
    "parse_train_config": "tfxfer.cli",
    "plan_phases": "tfxfer.training.strategies",
    "set_phase_trainable": "tfxfer.training.strategies",
    "PhaseTrainer": "tfxfer.training.trainer",
    "fit_phases": "tfxfer.training.trainer",
    "Classifier": "tfxfer.notebook.classifier",
    "fit": "tfxfer.notebook.classifier",
    "load": "tfxfer.notebook.classifier",
    "get_encoder": "tfxfer.text.encoders",
    "list_encoders": "tfxfer.text.encoders",
    "register_encoder": "tfxfer.text.encoders",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)

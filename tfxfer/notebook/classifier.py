"""`tfxfer.fit` and `tfxfer.load`: a trained run as one object, for notebooks.

    clf = tfxfer.fit("photos/", backbone="mobilenet_v2", epochs=3)
    clf.evaluate()                  # test metrics: accuracy, macro_f1, per_class, ...
    clf.predict(["a.jpg", "b.jpg"]) # label, probability and top-k of each input
    clf.export("saved_models")      # TF Serving: saved_models/<run name>/<version>
    clf.report()                    # report.html, shown inline in Jupyter
    clf = tfxfer.load(clf.run_dir)  # the same object for a finished run

Training is `tfxfer.experiment.train` (what `tfxfer train` runs), exporting is
`tfxfer.serving.export.export_run` (what `tfxfer export` runs), the report is
`tfxfer.reports.write_report` (what `tfxfer report` runs); nothing is re-implemented.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tfxfer.config import RunConfig, load_config
from tfxfer.notebook.keys import config_overrides
from tfxfer.notebook.view import Report

logger = logging.getLogger(__name__)


def _start_tensorflow() -> None:
    """What `tfxfer` does before it imports TensorFlow, done once per process."""
    from tfxfer.runtime.gc_policy import import_tensorflow
    from tfxfer.runtime.onednn import enable_onednn_default

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    enable_onednn_default()
    import_tensorflow()


class Classifier:
    """A trained classifier and its run directory.

    Made by `fit` (which trains) or `load` (an existing run); both give the same object.

    Attributes:
        run_dir: the run directory (see `tfxfer.rundir`).
        config: the run's resolved config.
        class_names: labels in class-id order.
    """

    def __init__(self, run_dir: str | Path, config: RunConfig, model: Any,
                 class_names: Sequence[str], result: Any = None) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.model = model
        self.class_names = list(class_names)
        self._result = result

    @property
    def modality(self) -> str:
        """"image" or "text"."""
        from tfxfer.modality import modality_of

        return modality_of(self.model)

    def __repr__(self) -> str:
        return (f"Classifier({self.modality}, {len(self.class_names)} classes, "
                f"run_dir={str(self.run_dir)!r})")

    def evaluate(self, recompute: bool = False) -> dict[str, Any]:
        """Metrics on the run's test split.

        Args:
            recompute: evaluate the model on the test split again (reading the data
                again, as `tfxfer evaluate` does) instead of returning the metrics the
                run recorded.

        Returns:
            accuracy, examples, macro_f1, per_class (precision, recall, f1, support),
            confusion_matrix and class_names (the content of metrics.json).

        Raises:
            ValueError: the run has no test split (test_fraction=0, no test_source).
        """
        from tfxfer import rundir

        if not recompute:
            evaluation = getattr(self._result, "evaluation", None)
            if evaluation is not None:
                return evaluation.to_dict()
            if (self.run_dir / rundir.METRICS).is_file():
                return json.loads((self.run_dir / rundir.METRICS).read_text())
        from tfxfer.experiment import evaluate_run

        return evaluate_run(self.run_dir).to_dict()

    def predict(self, inputs: Any, top_k: int = 3, batch_size: int = 32,
                as_frame: bool = False) -> list[dict[str, Any]] | Any:
        """Predicts the class of each input.

        Args:
            inputs: one input or a sequence: image file paths, folders, encoded bytes,
                arrays (H x W x 3 or N x H x W x 3) or PIL images for an image model;
                strings (or Path objects of text files) for a text model.
            top_k: how many best classes each row lists (at most the number of classes).
            batch_size: inputs per model call.
            as_frame: return a pandas DataFrame instead of a list of dicts.

        Returns:
            One row per input: `input` (path, text, or `array[i]`), `label` (the
            predicted class name), `probability` (its probability) and `top_k` (a list
            of (label, probability), best first).
        """
        import numpy as np

        from tfxfer.notebook.inputs import as_inputs, batches

        if top_k < 1:
            raise ValueError(f"top_k must be >= 1. Received: top_k={top_k}")
        modality = self.modality
        given = as_inputs(inputs, modality)
        size = self.config.model.image_input_size
        probs = np.concatenate([np.asarray(self.model(batch, training=False))
                                for batch in batches(given, modality, size, batch_size)])
        k = min(top_k, len(self.class_names))
        rows = []
        for name, p in zip(given.names, probs):
            best = np.argsort(-p, kind="stable")[:k]
            rows.append({"input": name, "label": self.class_names[best[0]],
                         "probability": float(p[best[0]]),
                         "top_k": [(self.class_names[i], float(p[i])) for i in best]})
        if as_frame:
            import pandas as pd

            return pd.DataFrame(rows, columns=["input", "label", "probability", "top_k"])
        return rows

    def export(self, base: str | Path = "saved_models", name: str | None = None,
               **options: Any) -> Any:
        """Exports the model for TF Serving as BASE/NAME/VERSION (what `tfxfer export` does).

        Args:
            base: the base directory of exported models.
            name: the model name (default: the run directory's name).
            **options: of `tfxfer.serving.export.export_model` / `export_run`:
                version, top_k, max_pixels, sample_files, warmup, verify.

        Returns:
            The ExportResult (`.path` is the version directory written).
        """
        from tfxfer.serving.export import export_run

        return export_run(self.run_dir, base, name or self.run_dir.resolve().name, **options)

    def report(self) -> Report:
        """Writes the run's report.html (what `tfxfer report` does) and returns it.

        In Jupyter the returned object renders the page inline; `str()` is its path.
        """
        from tfxfer.reports import write_report

        splits = getattr(self._result, "splits", None)
        return Report(write_report(self.run_dir, splits))


def fit(data: str | os.PathLike, *, config: str | os.PathLike | None = None,
        **keys: Any) -> Classifier:
    """Trains a classifier on `data` and returns it (what `tfxfer train` does).

    Args:
        data: a folder of class subfolders of images, a CSV file of texts and labels,
            or "tfds:NAME" (`data.source`).
        config: a YAML/JSON config file to start from (keywords override it).
        **keys: any config field by its name, e.g. `backbone="resnet50"`, `epochs=3`,
            `encoder="glove_6b_50d"`, `out="runs/mine"` (see `tfxfer.notebook.keys`).

    Returns:
        The trained Classifier; everything is also written to its `run_dir`.

    Raises:
        ValueError: an unknown key (named, with the valid ones) or an invalid value.
        FileNotFoundError: `data` (or another source) does not exist.

    Example:
        clf = tfxfer.fit("photos/", backbone="mobilenet_v2", epochs=3)
        clf.predict("photos/roses/1.jpg")
    """
    run_config = load_config(config, config_overrides({"source": os.fspath(data), **keys}))
    _start_tensorflow()
    from tfxfer.experiment import train

    result = train(run_config)
    return Classifier(result.run_dir, result.config, result.model, result.splits.class_names,
                      result)


def load(run_dir: str | os.PathLike) -> Classifier:
    """The Classifier of a finished run directory (written by `fit` or `tfxfer train`).

    Raises:
        FileNotFoundError: the directory lacks config.json, model.keras or labels.txt.
    """
    _start_tensorflow()
    from tfxfer.rundir import load_run

    config, model, class_names = load_run(run_dir)
    return Classifier(run_dir, config, model, class_names)

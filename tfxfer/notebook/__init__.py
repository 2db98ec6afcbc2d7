"""The notebook API: train, evaluate, predict, export and report in a few calls.

    classifier.py  fit / load -> Classifier (.evaluate .predict .export .report .run_dir)
    keys.py        fit's keywords (config field names) -> nested config overrides
    inputs.py      what predict accepts: paths, folders, bytes, arrays, texts
    view.py        Report: report.html, rendered inline in Jupyter

`tfxfer.fit`, `tfxfer.load` and `tfxfer.Classifier` are these; importing this
package loads no TensorFlow (fit and load import it when called).
"""

from tfxfer.utils.lazy import lazy_getattr

_PUBLIC = {
    "Classifier": "tfxfer.notebook.classifier",
    "fit": "tfxfer.notebook.classifier",
    "load": "tfxfer.notebook.classifier",
    "Report": "tfxfer.notebook.view",
    "config_overrides": "tfxfer.notebook.keys",
}

__all__ = sorted(_PUBLIC)
__getattr__ = lazy_getattr(__name__, _PUBLIC)

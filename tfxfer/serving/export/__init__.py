"""SavedModel export for TF Serving, one module per concern.

    exporter.py        export_model / export_run: the steps below, in order
    introspect.py      the Keras model: modality, image size, classes, weight bytes
    serving_module.py  the tf.Module and its signatures (raw bytes or text in)
    image_guard.py     the pixel budget read from image headers, checked before decoding
    checks.py          ops TF Serving cannot run; variables written once
    verify.py          a fresh TensorFlow-only process against the Keras model
    verify_child.py    the script that process runs (imports only TensorFlow)
    warmup.py          assets.extra/tf_serving_warmup_requests
    samples.py         example inputs for warmup and verification
    layout.py          BASE/NAME/VERSION numbering and atomic publishing
    errors.py          ExportError

The public names are imported on first use, so importing `layout` does not load Keras.
"""

from tfxfer.utils.lazy import lazy_getattr

_PUBLIC = {
    "ExportError": "tfxfer.serving.export.errors",
    "ExportResult": "tfxfer.serving.export.exporter",
    "export_model": "tfxfer.serving.export.exporter",
    "export_run": "tfxfer.serving.export.exporter",
}

__all__ = sorted(_PUBLIC)
__getattr__ = lazy_getattr(__name__, _PUBLIC)

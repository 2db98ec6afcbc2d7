"""The error an export raises when a model cannot be exported or an export fails a check."""


class ExportError(ValueError):
    """The model cannot be exported as TF Serving needs it, or the export failed a check."""

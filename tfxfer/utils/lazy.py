"""Public names of a package imported on first use, so importing it stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, public: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `public[name]` when `name` is first used.

    Example:
        _PUBLIC = {"export_model": "tfxfer.serving.export.exporter"}
        __getattr__ = lazy_getattr(__name__, _PUBLIC)
    """

    def __getattr__(name: str) -> Any:
        if name in public:
            return getattr(importlib.import_module(public[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__

"""Where reusable caches live and how much memory a cache may take."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

CACHE_ENV = "TFXFER_CACHE"

# Share of the currently available RAM that one in-memory cache may take.
MEMORY_SHARE = 0.5


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: `cache_dir`, else $TFXFER_CACHE, else ~/.cache/tfxfer."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path.home() / ".cache" / "tfxfer"


def memory_budget() -> int:
    """Bytes one in-memory cache may use: a share of the RAM available now."""
    return int(psutil.virtual_memory().available * MEMORY_SHARE)


def fits_in_memory(nbytes: int) -> bool:
    return nbytes <= memory_budget()

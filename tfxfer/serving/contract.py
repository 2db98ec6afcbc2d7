"""The TF Serving contract shared by the exporter, the clients and `tfxfer serve`.

Importing it does not load TensorFlow (`read_warmup` imports it when called).

**tfxfer's signatures.** `serving_default` takes one `[None]` DT_STRING tensor
named `inputs` (encoded JPEG/PNG/GIF/BMP bytes for image models, raw text for
text models) and returns:

    probabilities        [None, C] float32  softmax over the classes
    class_id             [None]    int64    argmax
    class_name           [None]    string   the label of class_id (from assets/labels.txt)
    top_k_class_ids      [None, K] int64    the K most probable classes, best first
    top_k_class_names    [None, K] string
    top_k_probabilities  [None, K] float32

Image models also have `serving_pixels`, the same outputs from a `[None, H, W, 3]`
uint8 batch of decoded RGB images named `images`.

**TF Serving's layout** (any SavedModel, not only tfxfer's):

    BASE/NAME/VERSION/saved_model.pb   a model per directory; versions are integer names
    VERSION/assets.extra/tf_serving_warmup_requests   PredictionLog records replayed on load

Other names under BASE or NAME (hidden, temporary `.export.tmp-*`) are ignored.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_SIGNATURE = "serving_default"
PIXELS_SIGNATURE = "serving_pixels"
WAVEFORM_SIGNATURE = "serving_waveform"  # audio exports: float waveforms at the model's rate

INPUT_KEY = "inputs"
PIXELS_KEY = "images"
WAVEFORM_KEY = "waveforms"

PROBABILITIES = "probabilities"
CLASS_ID = "class_id"
CLASS_NAME = "class_name"
TOP_K_CLASS_IDS = "top_k_class_ids"
TOP_K_CLASS_NAMES = "top_k_class_names"
TOP_K_PROBABILITIES = "top_k_probabilities"
OUTPUTS = (PROBABILITIES, CLASS_ID, CLASS_NAME, TOP_K_CLASS_IDS, TOP_K_CLASS_NAMES,
           TOP_K_PROBABILITIES)

DEFAULT_TOP_K = 5
# Encoded images declaring more pixels are refused before decoding (50 MP: 150 MB decoded).
DEFAULT_MAX_PIXELS = 50_000_000
# WAV bytes declaring more seconds of audio are refused before decoding (audio exports).
DEFAULT_MAX_AUDIO_SECONDS = 60.0

# Files inside a version directory.
LABELS_ASSET = "labels.txt"
WARMUP_FILE = "tf_serving_warmup_requests"
ASSETS_EXTRA = "assets.extra"


# ---------------------------------------------------------------- TF Serving's layout
# Facts of TF Serving itself, true of any SavedModel it serves, not only tfxfer's exports.

SERVE_TAG = "serve"  # the MetaGraph tag TF Serving loads
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
MAX_WARMUP_RECORDS = 1000  # TF Serving replays at most this many warmup records


def is_version_name(name: str) -> bool:
    """A version directory is named by an integer (TF Serving ignores every other name)."""
    return name.isascii() and name.isdigit()


def list_versions(model_dir: str | Path) -> list[int]:
    """The integer version directories under a model directory, ascending."""
    path = Path(model_dir)
    if not path.is_dir():
        return []
    return sorted(int(p.name) for p in path.iterdir() if is_version_name(p.name) and p.is_dir())


def has_saved_model(version_dir: str | Path) -> bool:
    """Whether a version directory holds a SavedModel (saved_model.pb or .pbtxt)."""
    return any(Path(version_dir, name).is_file() for name in SAVED_MODEL_FILES)


def check_model_name(name: str) -> str:
    """Returns `name` if it can name a model: the name of a directory under the base path.

    The same rule holds for exporting (BASE/NAME), discovering models under a base
    path and model names in requests: non-empty, no path separator or NUL, no
    leading "." (hidden and temporary directories, "." and ".."), and not an
    integer, which would be a version directory (a base path pointing at a model).

    Raises:
        ValueError: naming the rule `name` breaks.
    """
    if (not isinstance(name, str) or not name or name.startswith(".")
            or any(c in name for c in "/\\\0") or is_version_name(name)):
        raise ValueError(
            f"Invalid model name {name!r}: a model name is the name of a directory under the "
            "base path (non-empty, no path separators, no leading '.', not an integer).")
    return name


def is_model_name(name: str) -> bool:
    try:
        check_model_name(name)
    except ValueError:
        return False
    return True


def model_dirs(base: str | Path) -> dict[str, Path]:
    """Every directory under BASE whose name is a model name, by name (sorted).

    Raises:
        FileNotFoundError: BASE is not a directory.
    """
    base = Path(base)
    if not base.is_dir():
        raise FileNotFoundError(f"Base directory of exported models not found: {base}")
    return {p.name: p for p in sorted(base.iterdir()) if p.is_dir() and is_model_name(p.name)}


def is_single_model_dir(path: str | Path) -> bool:
    """Whether PATH is one model's directory (PATH/VERSION/saved_model.pb), not a base path.

    TF Serving's `--model_base_path` points at such a directory; `tfxfer serve` takes a
    base path of model directories, so this layout is recognised rather than read as
    models named "1", "2".
    """
    path = Path(path)
    return path.is_dir() and any(
        p.is_dir() and is_version_name(p.name) and has_saved_model(p) for p in path.iterdir())


def find_models(base: str | Path) -> dict[str, list[int]]:
    """Every model under BASE with at least one complete version, and its versions.

    A version counts when its directory holds a SavedModel.

    Raises:
        FileNotFoundError: BASE is not a directory.
    """
    models = {}
    for name, path in model_dirs(base).items():
        versions = [v for v in list_versions(path) if has_saved_model(path / str(v))]
        if versions:
            models[name] = versions
    return models


def warmup_path(version_dir: str | Path) -> Path:
    """VERSION/assets.extra/tf_serving_warmup_requests."""
    return Path(version_dir) / ASSETS_EXTRA / WARMUP_FILE


def read_warmup(version_dir: str | Path, limit: int = MAX_WARMUP_RECORDS) -> list:
    """The warmup `PredictionLog` records of a version (none when it has no warmup file).

    At most `limit` records are read, as TF Serving does.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = warmup_path(version_dir)
    if not path.is_file():
        return []
    records = []
    for raw in tf.data.TFRecordDataset(str(path)).take(limit):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        records.append(log)
    return records

"""Shared fixtures and helpers: tiny synthetic images and image folders, tiny configs,
gated offline assets.

Keras reads KERAS_HOME once, when it is imported, so the scratch KERAS_HOME that
real-asset tests load ImageNet weights from is made in `pytest_configure`,
before any test module imports Keras.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

ASSETS_ENV = "TFXFER_ASSETS"
_SCRATCH: list[str] = []


def pytest_configure(config):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    assets = os.environ.get(ASSETS_ENV)
    home = tempfile.mkdtemp(prefix="tfxfer-keras-home-")
    _SCRATCH.append(home)
    if assets and Path(assets, "keras", "models").is_dir():
        shutil.copytree(Path(assets, "keras", "models"), Path(home, "models"))
    os.environ["KERAS_HOME"] = home
    # Reusable caches (features, built encoders) go to a scratch dir, not ~/.cache.
    os.environ["TFXFER_CACHE"] = os.path.join(home, "tfxfer-cache")


def pytest_unconfigure(config):
    for path in _SCRATCH:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def assets() -> Path:
    """The offline assets folder named by $TFXFER_ASSETS (skips when unset)."""
    value = os.environ.get(ASSETS_ENV)
    if not value:
        pytest.skip(f"{ASSETS_ENV} is not set; real-asset tests need ../shared/assets")
    path = Path(value)
    if not path.is_dir():
        pytest.fail(f"{ASSETS_ENV}={value} is not a directory")
    return path


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    """A served-models base directory holding `server_models`' tiny SavedModel as tiny/1."""
    from server_models import cleanup_built, publish

    root = tmp_path_factory.mktemp("models")
    publish(root / "tiny", 1, scale=1.0)
    yield root
    cleanup_built()


@pytest.fixture
def domains(tmp_path) -> dict[str, Path]:
    """Digit-like source (labelled), flat unlabelled target and labelled target-test folders."""
    from adaptation_helpers import write_domain

    return {
        "source": write_domain(tmp_path / "source", 12, False, 0),
        "target": write_domain(tmp_path / "target", 8, True, 1, flat=True),
        "target_test": write_domain(tmp_path / "target_test", 4, True, 2),
    }


# Distinct, learnable colours per class (plus noise) so a tiny model can separate them.
CLASS_COLOURS = [(220, 40, 40), (40, 200, 60), (50, 70, 230)]


def random_images(n=2, size=32, *, seed=0, low=0, high=256, dtype="uint8") -> np.ndarray:
    """`n` images of uniform random pixels in [low, high), shape (n, size, size, 3).

    `size` is a side or a (height, width) pair; integer dtypes draw integers,
    float dtypes draw floats (e.g. low=-1, high=1 for preprocessed inputs).
    """
    rng = np.random.default_rng(seed)
    shape = (n, *_hw(size), 3)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(low, high, shape).astype(dtype)
    return rng.uniform(low, high, shape).astype(dtype)


def colour_images(n, size, *, seed=0, noise=40.0, colours=None) -> np.ndarray:
    """`n` uint8 images of solid colours plus Gaussian noise (clipped to 0-255).

    Image i has colour `colours[i % len(colours)]` (default `CLASS_COLOURS`), so a
    tiny model can learn them; strong noise covers the pixel values 0 and 255.
    """
    rng = np.random.default_rng(seed)
    colours = colours or CLASS_COLOURS
    base = np.array([colours[i % len(colours)] for i in range(n)], np.float32)
    pixels = base[:, None, None, :] + rng.normal(0, noise, (n, *_hw(size), 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _hw(size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)


def write_image(path: Path, colour, size=(40, 48), mode="RGB", seed=0) -> Path:
    """Writes a noisy solid-colour image; the format follows the file suffix."""
    from PIL import Image

    pixels = colour_images(1, size, seed=seed, noise=12.0, colours=[colour])[0]
    image = Image.fromarray(pixels, "RGB").convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def make_image_folder(root: Path, per_class: int = 6, classes=("red", "green", "blue")) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_image(root / name / f"{name}_{i}.jpg", CLASS_COLOURS[c % 3], seed=c * 100 + i)
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """Three classes of six small JPEGs each."""
    return make_image_folder(tmp_path / "images")


def tiny_config(source, out, **train):
    """A RunConfig for a fast run: MobileNet alpha 0.25 at 32 px, random weights."""
    from tfxfer.config import load_config

    return load_config(overrides={
        "data": {"source": str(source), "batch_size": 4, "val_fraction": 0.2,
                 "test_fraction": 0.2, "seed": 1},
        "model": {"image": {"backbone": "mobilenet", "weights": "none", "image_size": 32,
                            "backbone_kwargs": {"alpha": 0.25}}},
        "train": {"epochs": 1, "fine_tune_epochs": 1, "verbose": 0, **train},
        "out": str(out),
    })


def spread_backbone_weights(model, seed=0):
    """He-normal conv kernels and BatchNorm gamma 1.5 in the model's backbone.

    With Keras' default initialisation a random MobileNet at 32 px pools features
    of about 1e-17, so every image gets the same probabilities and a comparison of
    two ways of computing the outputs would hold trivially. With these weights the
    outputs depend on the image.
    """
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.get_layer("backbone").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(np.full(layer.gamma.shape, 1.5, "float32"))
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            fan_in = int(np.prod(layer.kernel.shape[:2]))
        elif isinstance(layer, keras.layers.Conv2D):
            fan_in = int(np.prod(layer.kernel.shape[:-1]))
        else:
            continue
        layer.kernel.assign(rng.normal(0, np.sqrt(2 / fan_in), layer.kernel.shape))
    return model

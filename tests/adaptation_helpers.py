"""Tiny synthetic domains for the domain-adaptation tests: 3 classes of bars, 28x28.

The class is the bar's position; the source draws white bars on black, the target
draws inverted bars on a random colour (a domain shift the labels do not depend on).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from tfxfer.config import load_config

SIZE = 28
CLASSES = 3


def digit_like(rng, label: int, target: bool) -> np.ndarray:
    """A bar whose position is the class: white on black (source) or on colour (target)."""
    image = np.zeros((SIZE, SIZE, 3), np.float32)
    if target:
        image += rng.uniform(60, 200, 3)
    image[:, 4 + 8 * label:10 + 8 * label] = 255 - image[:, 4 + 8 * label:10 + 8 * label]
    return np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)


def write_domain(root, per_class: int, target: bool, seed: int, flat: bool = False,
                 folder_names: dict[int, str] | None = None):
    """Writes `per_class` images of each class as root/<label>/<label>_<i>.png (or flat).

    `folder_names` puts class k's images into root/<folder_names[k]> instead (wrong
    labels, for tests that must not read them).
    """
    rng = np.random.default_rng(seed)
    for label in range(CLASSES):
        for i in range(per_class):
            name = (folder_names or {}).get(label, str(label))
            folder = root if flat else root / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(digit_like(rng, label, target)).save(folder / f"{label}_{i}.png")
    return root


def dann_config(domains, out, adaptation=None, **train):
    """A 2-epoch DANN run config on the tiny domains (batch 8, dann_mnist_cnn)."""
    return load_config(overrides={
        "data": {"source": str(domains["source"]), "test_source": str(domains["target_test"]),
                 "batch_size": 8, "val_fraction": 0.25, "seed": 1},
        "adaptation": {"target_source": str(domains["target"]),
                       "target_test_source": str(domains["target_test"]), **(adaptation or {})},
        "model": {"hidden_units": 16, "image": {"backbone": "dann_mnist_cnn", "weights": "none",
                                                "augment": False}},
        "train": {"strategy": "domain_adaptation", "epochs": 2, "fine_tune_epochs": 0,
                  "verbose": 0, "tensorboard": False, **train},
        "out": str(out),
    })

"""Real photos, real ImageNet weights: transfer learning must beat training from scratch.

Needs $TFXFER_ASSETS (the 600 tf_flowers photos and the MobileNet alpha=0.25
ImageNet weights, copied into a scratch KERAS_HOME by conftest). Runs in CI.
"""

import pytest

from tfxfer.config import load_config
from tfxfer.experiment import train

pytestmark = pytest.mark.assets


def _config(assets, out, strategy):
    return load_config(overrides={
        "data": {"source": str(assets / "flower_photos"), "val_fraction": 0.1,
                 "test_fraction": 0.3, "seed": 42},
        "model": {"backbone": "mobilenet", "backbone_kwargs": {"alpha": 0.25},
                  "weights": "imagenet", "image_size": 224},
        "train": {"strategy": strategy, "epochs": 10, "fine_tune_epochs": 10,
                  "learning_rate": 0.005, "fine_tune_learning_rate": 0.0001, "verbose": 0},
        "out": str(out),
    })


def test_two_phase_transfer_beats_from_scratch(assets, tmp_path):
    transfer = train(_config(assets, tmp_path / "transfer", "fine_tune"))
    scratch = train(_config(assets, tmp_path / "scratch", "from_scratch"))
    assert transfer.evaluation.y_true.size == 180
    print(f"two-phase {transfer.evaluation.accuracy:.4f}, "
          f"from scratch {scratch.evaluation.accuracy:.4f}")
    assert transfer.evaluation.accuracy >= 0.75
    assert transfer.evaluation.accuracy - scratch.evaluation.accuracy >= 0.25

"""Real photos, real ImageNet weights: transfer learning must beat training from scratch.

Needs $TFXFER_ASSETS (the 600 tf_flowers photos and the MobileNet alpha=0.25
ImageNet weights, copied into a scratch KERAS_HOME by conftest). Runs in CI.
The flowers app's own config is used, with the offline data and backbone.
"""

from pathlib import Path

import pytest

from tfxfer.config import load_config
from tfxfer.experiment import train

pytestmark = pytest.mark.assets

APP_CONFIG = Path(__file__).parents[1] / "apps" / "flowers" / "config.yaml"


def _config(assets, out, strategy):
    return load_config(APP_CONFIG, {
        "data": {"source": str(assets / "flower_photos")},
        "model": {"image": {"backbone": "mobilenet", "backbone_kwargs": {"alpha": 0.25}}},
        "train": {"strategy": strategy, "verbose": 0},
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

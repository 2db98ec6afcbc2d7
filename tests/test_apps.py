"""Every app: its config loads as it is, and its model builds (untrained) on tiny inputs.

An app's config names its modality by configuring exactly one model section
(`model.image` or `model.text`), or `model.audio` (with the `model.image` its backbone
reads); the data decide the modality of a real run.
Models are built with weights=None at 32 px (images) or on a tiny offline encoder
(text), so the test is fast and needs no network.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import random_images
from text_helpers import build_tiny_encoder

from tfxfer.config import load_config
from tfxfer.experiment import build_classifier
from tfxfer.image.backbones import get_backbone
from tfxfer.modality import AUDIO, IMAGE, TEXT, modality_of
from tfxfer.text.encoders import get_encoder

APPS = Path(__file__).resolve().parents[1] / "apps"
CONFIGS = sorted(APPS.glob("*/config.yaml"))
NUM_CLASSES = 3


def _modality(path: Path) -> str:
    model = yaml.safe_load(path.read_text()).get("model", {})
    if AUDIO in model:
        return AUDIO
    sections = [m for m in (IMAGE, TEXT) if m in model]
    assert len(sections) == 1, f"{path} must configure exactly one of model.image, model.text"
    return sections[0]


def _tiny_overrides(modality: str, tmp_path: Path) -> dict:
    if modality in (IMAGE, AUDIO):
        return {"model": {"image": {"weights": "none", "image_size": 32}}}
    return {"model": {"text": {"encoder": str(build_tiny_encoder(tmp_path / "encoder"))}}}


def _tiny_inputs(modality: str, model=None):
    if modality == AUDIO:
        samples = model.inputs[0].shape[1]
        return np.random.default_rng(0).normal(0, 0.1, (2, samples)).astype(np.float32)
    if modality == IMAGE:
        return random_images(2, (40, 48))
    import tensorflow as tf

    return tf.constant(["a good film<br />", "dull"])


def _load_app(name: str):
    spec = importlib.util.spec_from_file_location(f"app_{name}", APPS / name / "train.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def test_the_apps_are_found():
    assert {p.parent.name for p in CONFIGS} >= {"flowers", "imdb", "speech"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.parent.name)
def test_app_config_builds_its_model(path, tmp_path):
    modality = _modality(path)
    config = load_config(path)  # the file as it is: every key known, every value valid
    section = config.model.section(modality)
    if modality in (IMAGE, AUDIO):
        get_backbone(config.model.image.backbone)
    else:
        get_encoder(section.encoder)  # a registered name, resolvable offline

    tiny = load_config(path, _tiny_overrides(modality, tmp_path))
    model = build_classifier(tiny, modality, NUM_CLASSES)
    assert modality_of(model) == modality
    probs = np.asarray(model(_tiny_inputs(modality, model), training=False))
    assert probs.shape == (2, NUM_CLASSES) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.parent.name)
def test_app_script_takes_the_train_flags(path, capsys):
    app = _load_app(path.parent.name)
    with pytest.raises(SystemExit) as done:
        app.main(["--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    for flag in ("--data", "--test-data", "--backbone", "--backbone-arg", "--encoder",
                 "--strategy", "--epochs", "--out"):
        assert flag in usage


@pytest.mark.parametrize("extra, monitor", [([], "val_rating_mae"),
                                            (["--monitor", "val_loss"], "val_loss")])
def test_rating_app_multitask_flag_sets_its_recipe_and_yields_to_later_flags(extra, monitor):
    from tfxfer.cli import parse_train_config

    app = _load_app("imdb_rating")
    own, rest = app._own_flags(["--multitask", "--drop-ratings", "0.5", *extra])
    assert own.drop_ratings == 0.5
    config = parse_train_config(rest, config_file=app.CONFIG)
    assert config.data.target == "label,rating:regression"
    assert config.model.head_towers and config.train.monitor == monitor
    alone = parse_train_config(app._own_flags([])[1], config_file=app.CONFIG)
    assert alone.data.target == "rating:regression" and not alone.model.head_towers

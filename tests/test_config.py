"""Config sections (per modality, adaptation), keys of the earlier layout, flags into sections."""

import dataclasses
import json

import pytest

from tfxfer import cli
from tfxfer.config import (
    AUTO,
    MOVED_KEYS,
    STRATEGIES,
    AdaptationConfig,
    ImageConfig,
    ModelConfig,
    RunConfig,
    TextConfig,
    config_from_dict,
    load_config,
)


def test_sections_hold_their_modality_fields():
    config = load_config(overrides={"model": {"image": {"backbone": "vgg16", "pooling": "max"},
                                              "text": {"encoder": "x"}, "dropout": 0.3}})
    assert config.model.image == ImageConfig(backbone="vgg16", pooling="max")
    assert config.model.text == TextConfig(encoder="x") and config.model.dropout == 0.3
    assert not hasattr(config.model, "backbone") and not hasattr(config.model, "encoder")


def test_a_run_keeps_only_its_modality_and_names_unused_settings():
    model = load_config(overrides={"model": {"image": {"image_size": 64}}}).model
    assert model.unused_settings("text") == ["model.image.image_size=64"]
    assert model.unused_settings("image") == []  # the text section is at its defaults
    text_only = model.for_modality("text")
    assert text_only.image is None and text_only.text == TextConfig()
    assert text_only.unused_settings("text") == []
    with pytest.raises(ValueError, match="no image section"):
        text_only.section("image")
    again = config_from_dict(load_config(overrides={"model": {"image": None}}).to_dict())
    assert again.model.image is None and again.model.text == TextConfig()


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("section, key, new_place", [
    ("model", "backbone", "model.image.backbone"),
    ("model", "encoder", "model.text.encoder"),
    ("model", "image_size", "model.image.image_size"),
    ("data", "target_source", "adaptation.target_source"),
    ("data", "target_test_source", "adaptation.target_test_source"),
    ("train", "domain_hidden_units", "adaptation.domain_hidden_units"),
    ("train", "adaptation_features", "adaptation.features"),
    ("train", "adaptation_lambda", "adaptation.lambda_max"),
    ("train", "adaptation_lambdas", "adaptation.lambda_grid"),
    ("train", "reverse_validation_fraction", "adaptation.reverse_validation_fraction"),
    ("train", "anneal_learning_rate", "adaptation.anneal_learning_rate"),
])
def test_a_key_of_the_earlier_layout_names_its_new_place(tmp_path, suffix, section, key,
                                                         new_place):
    path = tmp_path / f"old{suffix}"
    path.write_text(json.dumps({section: {key: 1}}))  # JSON is YAML too
    with pytest.raises(ValueError) as error:
        load_config(path)
    assert str(error.value) == (f"Config key '{section}.{key}' has moved: write it as "
                                f"'{new_place}' (the earlier layout is not read).")


def _has_key(dotted: str) -> bool:
    node = RunConfig()
    for name in dotted.split("."):
        if not hasattr(node, name):
            return False
        node = getattr(node, name)
    return True


def test_every_moved_key_is_gone_from_its_old_place_and_exists_in_its_new_one():
    # Every image and text key once flat under `model` (a new section key too: written
    # flat, it is pointed to its section) + the 8 of the adaptation section.
    sections = len(dataclasses.fields(ImageConfig)) + len(dataclasses.fields(TextConfig))
    assert len(MOVED_KEYS) == sections + 8 and sections >= 13
    for old, new in MOVED_KEYS.items():
        assert not _has_key(old) and _has_key(new), (old, new)


def test_flat_keyword_arguments_of_model_config_are_rejected():
    with pytest.raises(TypeError, match="backbone"):
        ModelConfig(backbone="mobilenet")


def test_adaptation_section_from_a_file(tmp_path):
    path = tmp_path / "dann.yaml"
    path.write_text("train: {strategy: domain_adaptation}\n"
                    "adaptation: {target_source: target, lambda_max: auto, features: hidden,\n"
                    "             lambda_grid: [0, 0.5], domain_hidden_units: 8}\n"
                    "model: {hidden_units: 4}\n")
    adaptation = load_config(path).adaptation
    assert adaptation == AdaptationConfig(target_source="target", lambda_max="auto",
                                          features="hidden", lambda_grid=[0, 0.5],
                                          domain_hidden_units=8)
    assert config_from_dict(load_config(path).to_dict()).adaptation == adaptation


def test_unknown_keys_in_a_section_are_named():
    with pytest.raises(ValueError, match="Unknown config key 'model.image.colour'"):
        load_config(overrides={"model": {"image": {"colour": "red"}}})


def test_flags_keep_their_names_and_land_in_sections():
    args = cli.build_parser().parse_args([
        "train", "--backbone", "mobilenet", "--backbone-arg", "alpha=0.25", "--image-size",
        "32", "--no-augment", "--weights", "none", "--encoder", "e", "--dropout", "0.1",
        "--strategy", "fine_tune_all"])
    overrides = cli.train_overrides(args)
    assert overrides["model"] == {
        "image": {"backbone": "mobilenet", "weights": "none", "image_size": 32,
                  "augment": False, "backbone_kwargs": {"alpha": 0.25}},
        "text": {"encoder": "e"}, "dropout": 0.1}
    assert overrides["train"] == {"strategy": "fine_tune_all"}
    assert load_config(overrides=overrides).model.image.backbone_kwargs == {"alpha": 0.25}


def test_domain_adaptation_flags_keep_their_names_and_land_in_the_adaptation_section():
    args = cli.build_parser().parse_args([
        "train", "--strategy", "domain_adaptation", "--target-data", "t",
        "--target-test-data", "tt", "--domain-hidden-units", "8", "--hidden-units", "4",
        "--adaptation-features", "hidden", "--adaptation-lambda", "0.3",
        "--adaptation-lambdas", "0,0.3", "--reverse-validation-fraction", "0.5"])
    overrides = cli.train_overrides(args)
    assert overrides["adaptation"] == {
        "target_source": "t", "target_test_source": "tt", "domain_hidden_units": 8,
        "features": "hidden", "lambda_max": 0.3, "lambda_grid": [0.0, 0.3],
        "reverse_validation_fraction": 0.5}
    assert overrides["train"] == {"strategy": "domain_adaptation"}
    assert load_config(overrides=overrides).adaptation.features == "hidden"


def test_the_cli_lists_the_strategies_of_the_config():
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    strategy = next(a for a in train._actions if a.dest == "strategy")
    assert tuple(strategy.choices) == (*STRATEGIES, AUTO)  # auto: tfxfer.auto.advisor


WRONG_TYPES = [
    ("train:\n  epochs: ten\n", "'train.epochs' must be an integer. Received: 'ten'"),
    ("model:\n  image:\n    image_size: 1.5\n",
     "'model.image.image_size' must be an integer or null"),
    ("model:\n  dropout: high\n", "'model.dropout' must be a number"),
    ("data:\n  seed: yes\n", "'data.seed' must be an integer. Received: True"),
    ("model:\n  text:\n    encoder: 3\n", "'model.text.encoder' must be a string"),
]


@pytest.mark.parametrize("text,message", WRONG_TYPES,
                         ids=[m.split("'")[1] for _, m in WRONG_TYPES])
def test_a_config_value_of_the_wrong_type_names_the_field(tmp_path, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_config(path)
    assert message in str(error.value)


def test_the_cli_reports_a_wrong_type_in_one_line(tmp_path, caplog):
    path = tmp_path / "config.yaml"
    path.write_text("train:\n  epochs: ten\n")
    assert cli.main(["train", "--config", str(path), "--data", str(tmp_path)]) == 2
    assert "'train.epochs' must be an integer" in caplog.text


def test_numbers_and_containers_of_the_right_type_are_accepted():
    config = load_config(overrides={"train": {"learning_rate": 1, "epochs": 2},
                                    "model": {"image": {"backbone_kwargs": {"alpha": 0.25}}}})
    assert config.train.learning_rate == 1 and config.train.epochs == 2

"""Config sections per modality, the old flat layout, and flags into sections."""

import json
import logging

import pytest

from tfxfer import cli
from tfxfer.config import (
    AUTO,
    STRATEGIES,
    ImageConfig,
    ModelConfig,
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
def test_old_flat_model_keys_are_mapped_into_sections(tmp_path, caplog, suffix):
    flat = {"model": {"backbone": "mobilenet", "image_size": 32, "backbone_kwargs": {"alpha": 0.25},
                      "encoder": "glove-6b-50d", "dropout": 0.4}}
    path = tmp_path / f"old{suffix}"
    path.write_text(json.dumps(flat))  # JSON is YAML too
    with caplog.at_level(logging.WARNING, logger="tfxfer.config"):
        config = load_config(path)
    image = config.model.image
    assert (image.backbone, image.image_size, image.backbone_kwargs) == ("mobilenet", 32,
                                                                         {"alpha": 0.25})
    assert config.model.text.encoder == "glove-6b-50d" and config.model.dropout == 0.4
    assert "model.backbone -> model.image.backbone" in caplog.text
    assert "model.encoder -> model.text.encoder" in caplog.text


def test_old_flat_keyword_arguments_are_mapped():
    model = ModelConfig(backbone="mobilenet", augment=False, encoder="e", hidden_units=3)
    assert model.image == ImageConfig(backbone="mobilenet", augment=False)
    assert model.text == TextConfig(encoder="e") and model.hidden_units == 3


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

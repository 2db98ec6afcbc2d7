"""Readable class names (`--label-names`, `data.label_names`) for sources labelled 0/1."""

import argparse

import pandas as pd
import pytest
from text_helpers import review_rows

from tfxfer.cli import _label_names
from tfxfer.config import DataConfig, load_config
from tfxfer.data.text import load_dataframe_splits


def _frame(labels=("0", "1")) -> pd.DataFrame:
    return pd.DataFrame(review_rows(20, labels=labels), columns=["text", "label"])


def test_label_names_rename_classes_and_keep_label_ids():
    plain = load_dataframe_splits(_frame(), DataConfig(seed=1))
    named = load_dataframe_splits(_frame(), DataConfig(seed=1, label_names={
        0: "negative", 1: "positive", "neg": "negative", "pos": "positive"}))
    assert plain.class_names == ["0", "1"]
    assert named.class_names == ["negative", "positive"]
    for split in ("train", "val", "test"):
        assert named.labels[split].tolist() == plain.labels[split].tolist()


def test_label_names_errors_name_the_labels():
    with pytest.raises(ValueError, match=r"none of which DataFrame has; its labels are \['0'"):
        load_dataframe_splits(_frame(), DataConfig(label_names={"neg": "negative"}))
    with pytest.raises(ValueError, match="two classes the same name"):
        load_dataframe_splits(_frame(), DataConfig(label_names={"0": "x", "1": "x"}))
    with pytest.raises(ValueError, match="data.label_names must map labels to non-empty names"):
        load_config(overrides={"data": {"label_names": {"0": " "}}})


def test_label_names_flag_parses_pairs():
    assert _label_names("0=negative, 1=positive") == {"0": "negative", "1": "positive"}
    for bad in ("0", "=x", "0=", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="LABEL=NAME"):
            _label_names(bad)

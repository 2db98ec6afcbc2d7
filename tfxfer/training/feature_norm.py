"""The statistics of a classifier's `feature_norm` layer, from its training data.

A classifier on a backbone cut at an earlier layer standardises its pooled
features (`tfxfer.image.model`, `tfxfer.image.layers.FeatureStandardization`). Before the
first phase, `fit_feature_norm` sets the layer's mean and variance from the
pooled features of the training split (inference mode, no augmentation). When
phase 1 trains on cached features without augmented copies, these are the same
cached features, so the head reuses them. With augmented copies, or when phase 1
pools its features from phase 2's cached boundary activations, phase 1 computes
its own and the training split goes through the backbone once more.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from tfxfer.config import RunConfig
from tfxfer.data.splits import Splits
from tfxfer.image.layers import FeatureStandardization
from tfxfer.image.model import FEATURE_NORM, optional_layer
from tfxfer.training.bottleneck import FeatureExtractor, cached_split

logger = logging.getLogger(__name__)


def feature_norm_layer(model: keras.Model) -> FeatureStandardization | None:
    """The model's `feature_norm` layer, or None when it has none."""
    return optional_layer(model, FEATURE_NORM)


def _uses_cache(config: RunConfig) -> bool:
    train = config.train
    return train.bottleneck_cache != "off" and train.strategy != "from_scratch"


def fit_feature_norm(model: keras.Model, config: RunConfig, splits: Splits) -> bool:
    """Sets `model`'s feature_norm statistics from the training split's pooled features.

    Args:
        model: a tfxfer classifier (nothing happens without a feature_norm layer).
        config: the resolved run config (cache directory, batch size, strategy).
        splits: the data; its training split is read once.

    Returns:
        Whether the model had a feature_norm layer (and it was set).
    """
    layer = feature_norm_layer(model)
    if layer is None:
        return False
    if _uses_cache(config):
        features, _ = cached_split(model, config, splits, "train", 0)
    else:
        extract = FeatureExtractor(model)
        batches = splits.batches("train", config.data, training=False)
        features = np.concatenate([extract(inputs) for inputs, _ in batches])
    layer.set_statistics(features)
    logger.info("Standardising the %d pooled features of the cut with the statistics of %d "
                "training examples", features.shape[-1], len(features))
    return True

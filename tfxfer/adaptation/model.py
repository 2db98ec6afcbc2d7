"""A label classifier and a domain classifier trained against each other (DANN).

    image ─ backbone ─ pooling ──┬─ dropout ─ [hidden] ─ predictions   (label head)
                                 └─ GradientReversal ─ dense ─ domain logit  (domain head)

`DomainAdversarialModel` wraps a tfxfer classifier without changing it: the
domain head reads the pooled features (the features the label head sees), and
`train_step` takes a labelled source batch and an unlabelled target batch (half
each of the mixed batch). Calling the model, `evaluate` and `predict` use the
label classifier alone, so validation and export see an ordinary tfxfer model.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from tfxfer.adaptation.layers import GradientReversal
from tfxfer.config import AdaptationConfig
from tfxfer.image.model import HIDDEN, POOLING

DOMAIN_HEAD = "domain_head"
REVERSAL = "gradient_reversal"
# `adaptation.features` -> the classifier layer whose output the domain head reads.
FEATURE_LAYERS = {"pooling": POOLING, "hidden": HIDDEN}


def _unscale(loss):
    """A per-replica loss (Keras divides it by the replica count) back to the batch mean."""
    return loss * tf.distribute.get_strategy().num_replicas_in_sync


def build_domain_head(hidden_units: int = 100) -> keras.Sequential:
    """The domain classifier: [Dense(hidden, relu)] -> Dense(1) logit (1 = target)."""
    layers = []
    if hidden_units:
        layers.append(keras.layers.Dense(hidden_units, activation="relu", name="domain_hidden"))
    layers.append(keras.layers.Dense(1, dtype="float32", name="domain_logit"))
    return keras.Sequential(layers, name=DOMAIN_HEAD)


class DomainAdversarialModel(keras.Model):
    """Trains `classifier` on source labels while a domain head is trained against it.

    Args:
        classifier: a tfxfer classifier (it has a layer named "pooling").
        domain_hidden_units: width of the domain head's hidden layer (0: none).
        features_layer: the layer whose output the domain head reads.

    The training data are `((source_images, target_images), source_labels)`;
    the reported metrics add `domain_loss` and `domain_accuracy` (on the mixed
    batch; 0.5 is chance) to the label loss and accuracy.
    """

    def __init__(self, classifier: keras.Model, domain_hidden_units: int = 100,
                 features_layer: str = POOLING, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classifier = classifier
        features = classifier.get_layer(features_layer).output
        self.extractor = keras.Model(
            classifier.inputs, [features, classifier.outputs[0]], name="features_and_labels"
        )
        self.reversal = GradientReversal(0.0, name=REVERSAL)
        self.domain_head = build_domain_head(domain_hidden_units)
        # Built now, so an optimizer built before the first step (as under a
        # tf.distribute strategy) knows the domain head's variables.
        self.domain_head.build(tuple(features.shape))
        self.domain_loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
        self.domain_loss_tracker = keras.metrics.Mean(name="domain_loss")
        self.domain_accuracy = keras.metrics.BinaryAccuracy(name="domain_accuracy", threshold=0.0)
        self.built = True

    def call(self, inputs, training=False):
        # Keras may build the model on an element of the training data, a
        # (source, target) pair: the label classifier sees the source images.
        if isinstance(inputs, (tuple, list)):
            inputs = inputs[0]
        return self.classifier(inputs, training=training)

    def train_step(self, data):
        (source, target), labels = data
        n_source = tf.shape(source)[0]
        domains = tf.concat(
            [tf.zeros([n_source, 1]), tf.ones([tf.shape(target)[0], 1])], axis=0
        )
        with tf.GradientTape() as tape:
            features, predictions = self.extractor(
                tf.concat([source, target], axis=0), training=True
            )
            source_predictions = predictions[:n_source]
            label_loss = self.compute_loss(
                x=source, y=labels, y_pred=source_predictions, training=True
            )
            logits = self.domain_head(self.reversal(features), training=True)
            domain_loss = self.domain_loss_fn(domains, logits)
            # The reversal turns this sum into: the domain head minimises the domain
            # loss, the features minimise label loss - λ * domain loss.
            scaled = self.optimizer.scale_loss(label_loss + domain_loss)
        # `loss` in the logs is the label loss, as in Keras' own train_step (which
        # also feeds this tracker).
        self._loss_tracker.update_state(_unscale(label_loss), sample_weight=n_source)
        variables = self.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        self.domain_loss_tracker.update_state(_unscale(domain_loss))
        self.domain_accuracy.update_state(domains, logits)
        logs = self.compute_metrics(source, labels, source_predictions)
        logs["domain_loss"] = self.domain_loss_tracker.result()
        logs["domain_accuracy"] = self.domain_accuracy.result()
        return logs

    def test_step(self, data):
        logs = super().test_step(data)  # the label classifier on labelled data
        return {k: v for k, v in logs.items() if not k.startswith("domain_")}

    @property
    def metrics(self):
        return [*super().metrics, self.domain_loss_tracker, self.domain_accuracy]


def domain_adversarial_model(
    classifier: keras.Model, adaptation: AdaptationConfig
) -> DomainAdversarialModel:
    """`classifier` under a domain head as `adaptation` asks (width and features it reads)."""
    return DomainAdversarialModel(classifier, adaptation.domain_hidden_units,
                                  features_layer=FEATURE_LAYERS[adaptation.features])

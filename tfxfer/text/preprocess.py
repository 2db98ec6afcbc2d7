"""Text clean-up inside the model, before any encoder.

IMDB reviews (and much scraped text) carry HTML line breaks (`<br />`). The
offline GloVe encoder removes them itself; for other encoders (nnlm, swivel,
USE, any SavedModel) the text model applies `HtmlLineBreaks` first, so an
exported model takes raw review text whatever the encoder.
"""

from __future__ import annotations

import keras
import tensorflow as tf

HTML_LINE_BREAK = r"(?i)<br\s*/?>"


def strip_html_line_breaks(text: tf.Tensor) -> tf.Tensor:
    """Replaces every `<br>`, `<br/>` and `<br />` (any case) with a space."""
    return tf.strings.regex_replace(text, HTML_LINE_BREAK, " ")


@keras.saving.register_keras_serializable(package="tfxfer")
class HtmlLineBreaks(keras.layers.Layer):
    """A string-to-string layer that replaces HTML line breaks with spaces."""

    def call(self, text):
        return strip_html_line_breaks(tf.convert_to_tensor(text, tf.string))

    def compute_output_shape(self, input_shape):
        return input_shape

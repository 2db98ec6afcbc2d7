"""tf.data pipelines shared by images and text.

A source yields unbatched `(raw, label)` pairs, where `raw` is an encoded image
(bytes) or a string of text. `make_batches` decodes in parallel, caches,
shuffles, batches and prefetches:

    map(decode, AUTOTUNE) -> cache -> shuffle -> batch -> prefetch(AUTOTUNE)

With `sort_window` (texts for a transformer with dynamic padding), examples are
sorted by length within windows of `sort_window` batches, so that each batch pads to
similar lengths, and the batches are shuffled again:

    ... -> shuffle -> batch(window) -> sort by length -> unbatch -> batch
        -> shuffle batches (training) -> prefetch
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def decode_image(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes JPEG/PNG/GIF/BMP bytes to a uint8 RGB image of `image_size`².

    Grayscale is expanded to RGB, alpha is dropped and animated GIFs give their
    first frame.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return resize_image(image, image_size)


def resize_image(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """An RGB image (H x W x 3, any dtype of 0-255 values) as uint8 of `image_size`²."""
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def image_decoder(image_size: int, from_paths: bool) -> Callable:
    """A map function from (path or bytes, label) to (uint8 image, label).

    Not converted by AutoGraph (it has no Python control flow): converting it cost 40 ms
    of the first pipeline built in a process.
    """

    @tf.autograph.experimental.do_not_convert
    def decode(raw, label):
        encoded = tf.io.read_file(raw) if from_paths else raw
        return decode_image(encoded, image_size), label

    return decode


def single_pass(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` for one pass (feature extraction, evaluation), with tf.data's autotuner off.

    Measured here (TF 2.21, 2 cores): deleting the iterator of an autotuned pipeline
    after one full pass under a busy model blocked for 2.35-2.6 s in about half of the
    runs (phase 1 of the flowers run: 4.0 s became 6.5 s); with the autotuner off, no
    run stalled and the pass was as fast (`AUTOTUNE` parallelism then uses every core).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def make_batches(
    ds: tf.data.Dataset,
    *,
    batch_size: int,
    training: bool,
    decode: Callable | None = None,
    cache: str = "memory",
    seed: int = 0,
    num_examples: int | None = None,
    skip_errors: bool = False,
    drop_remainder: bool = False,
    sort_window: int = 0,
) -> tf.data.Dataset:
    """Turns unbatched (raw, label) pairs into a batched, prefetched dataset.

    Args:
        ds: unbatched source.
        batch_size: examples per batch.
        training: shuffle (reshuffled every epoch) when True; keep order otherwise.
        decode: optional parallel map applied first (e.g. `image_decoder`).
        cache: "memory", "none", or a file prefix for an on-disk cache.
        seed: shuffle seed.
        num_examples: size of `ds`, used as the shuffle buffer (a full shuffle).
        skip_errors: drop elements whose decoding fails (used when files were not
            validated beforehand); a warning is logged for each.
        drop_remainder: drop the last partial batch (multi-replica training needs
            batches that split evenly).
        sort_window: batches per window sorted by string length (0: no sorting);
            the order of examples changes, each keeps its label.

    Returns:
        The batched dataset.
    """
    if decode is not None:
        ds = ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    if skip_errors:
        ds = ds.ignore_errors(log_warning=True)
    if cache == "memory":
        ds = ds.cache()
    elif cache and cache != "none":
        ds = ds.cache(cache)
    if training:
        buffer = num_examples or 10_000
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if sort_window > 1:
        examples = int(ds.cardinality())
        ds = ds.batch(batch_size * sort_window).map(_sorted_by_length).unbatch()
        ds = with_batch_count(ds.batch(batch_size, drop_remainder=drop_remainder), examples,
                              batch_size, drop_remainder)
    else:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if training and sort_window > 1:
        ds = ds.shuffle(sort_window, seed=seed, reshuffle_each_iteration=True)
    return ds.prefetch(AUTOTUNE)


def with_batch_count(ds: tf.data.Dataset, examples: int, batch_size: int,
                     drop_remainder: bool) -> tf.data.Dataset:
    """`ds`, batched after an `unbatch`, with its number of batches declared again.

    `unbatch` forgets the cardinality, and a learning-rate schedule or warmup needs the
    batches per epoch. `examples` < 0 (unknown before) leaves `ds` as it is.
    """
    if examples < 0:
        return ds
    batches = examples // batch_size if drop_remainder else -(-examples // batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(batches))


@tf.autograph.experimental.do_not_convert
def _sorted_by_length(texts: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    order = tf.argsort(tf.strings.length(texts), stable=True)
    return tf.gather(texts, order), tf.gather(labels, order)

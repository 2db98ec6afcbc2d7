"""The audio classifier factory: any registered image backbone on a log-mel spectrogram.

    waveform [B, clip samples] -> [augmentation: speed, shift, noise] -> log_mel
        -> [spec_augment] -> spectrogram_image (S x S x 3, 0-255) -> preprocess
        -> backbone -> pooling -> dropout -> [hidden] -> predictions

Everything after the waveform is inside the model; the export decodes WAV bytes to the
waveform in its graph (`tfxfer.audio.decode`), so a served model takes raw WAV files.
The backbone, its weights (ImageNet or a weights file), the picture's side
(`image_size`) and the pooling come from `ModelConfig.image`, the front end and the
augmentation from `ModelConfig.audio`. The head and its layer names are the image
model's (`tfxfer.image.model.build_head`), so the two-phase strategies, the feature
cache and the advisor treat an audio model like an image model. The augmentation
layer is named "augmentation" like the image one, so the feature cache knows to run
the full model while it is on.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from tfxfer.audio.decode import clip_samples
from tfxfer.audio.layers import LogMelSpectrogram, SpecAugment, SpectrogramImage, WaveAugment
from tfxfer.config import ModelConfig
from tfxfer.image.backbones import build_backbone, get_backbone
from tfxfer.image.layers import BackbonePreprocess
from tfxfer.image.model import AUGMENTATION, build_head, image_size_for, pooling_layer
from tfxfer.modality import AUDIO, AUDIO_FRONT_END, IMAGE

WAVEFORM_INPUT = "waveform"
LOG_MEL = AUDIO_FRONT_END
SPEC_AUGMENT = "spec_augment"
SPECTROGRAM_IMAGE = "spectrogram_image"


def build_audio_classifier(
    config: ModelConfig, num_classes: int, *, from_scratch: bool = False,
    train_batchnorm: bool = False, head: Callable | None = None,
) -> keras.Model:
    """Builds a classifier from waveforms to class probabilities.

    Args:
        config: the model section: `config.audio` (rate, clip, front end, augmentation),
            `config.image` (backbone, weights, image_size, pooling) and the head.
        num_classes: number of classes.
        from_scratch: random backbone weights, BatchNorm following the training flag
            (the `from_scratch` strategy); otherwise the backbone runs with training=False.
        train_batchnorm: a pretrained backbone's BatchNorm layers follow the training
            flag once trainable (`train.fine_tune_batchnorm`): ImageNet's statistics do
            not fit log-mel pictures.
        head: builds the outputs from the pooled features instead of `build_head`
            (task heads, `tfxfer.tasks.model`); `num_classes` is then not used.

    Returns:
        An uncompiled `keras.Model` with one float32 input [batch, clip samples].
    """
    audio, image = config.section(AUDIO), config.section(IMAGE)
    if image.feature_layer:
        raise ValueError("Audio models put the head on the backbone's top; model.image."
                         f"feature_layer is not supported. Received: {image.feature_layer!r}")
    spec = get_backbone(image.backbone)
    size = image_size_for(config)
    backbone = build_backbone(spec.name, weights=None if from_scratch else image.weights,
                              image_size=size, **image.backbone_kwargs)

    inputs = keras.Input(shape=(clip_samples(audio.sample_rate, audio.clip_seconds),),
                         dtype="float32", name=WAVEFORM_INPUT)
    x = inputs
    if audio.augment:
        x = WaveAugment(audio.time_shift, audio.noise, audio.speed, name=AUGMENTATION)(x)
    x = LogMelSpectrogram(audio.sample_rate, audio.frame_ms, audio.hop_ms, audio.n_mels,
                          audio.fmin, audio.fmax, audio.top_db, audio.band_norm,
                          name=LOG_MEL)(x)
    if audio.augment and audio.spec_masks:
        x = SpecAugment(audio.spec_masks, audio.freq_mask, audio.time_mask, audio.top_db,
                        name=SPEC_AUGMENT)(x)
    x = SpectrogramImage(size, audio.top_db, name=SPECTROGRAM_IMAGE)(x)
    x = BackbonePreprocess(spec.name, name="preprocess")(x)
    x = backbone(x) if from_scratch or train_batchnorm else backbone(x, training=False)
    x = pooling_layer(image.pooling)(x)
    outputs = head(x) if head is not None else build_head(x, num_classes, config)
    return keras.Model(inputs, outputs, name=f"{spec.name}_audio_classifier")


def audio_front_end(model: keras.Model) -> tuple[int, int]:
    """(sample_rate, clip samples) an audio model's waveform input expects."""
    layer = model.get_layer(LOG_MEL)
    return layer.sample_rate, int(model.inputs[0].shape[1])

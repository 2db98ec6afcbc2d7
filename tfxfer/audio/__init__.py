"""Audio transfer learning: WAV files -> log-mel "images" -> any image backbone.

    decode.py   WAV bytes -> mono float waveform at the model's rate, resampled and
                padded/cropped to the clip length (training pipeline and export)
    folder.py   folders of class subfolders of WAV files -> Splits; bad files named
    layers.py   layers saved inside models: log-mel spectrogram, spectrogram image,
                waveform augmentation (time shift, noise), SpecAugment masks
    model.py    the audio classifier factory (an image backbone on the spectrogram)
    guard.py    the duration budget an export checks before decoding WAV bytes
    fsdd.py     the Free Spoken Digit Dataset's flat files as train/test class folders

A Keras audio model takes `[batch, samples]` float waveforms; its export takes raw WAV
bytes and decodes them in the graph with `decode.decode_wav_bytes`, as an image export
decodes JPEG bytes. Names are imported lazily (the CLI lists commands without TensorFlow).
"""

from tfxfer.utils.lazy import lazy_getattr

_EXPORTS = {
    "clip_samples": "tfxfer.audio.decode",
    "decode_wav_bytes": "tfxfer.audio.decode",
    "wav_decoder": "tfxfer.audio.decode",
    "check_wav": "tfxfer.audio.folder",
    "load_audio_folder_splits": "tfxfer.audio.folder",
    "scan_audio_folder": "tfxfer.audio.folder",
    "LogMelSpectrogram": "tfxfer.audio.layers",
    "SpecAugment": "tfxfer.audio.layers",
    "SpectrogramImage": "tfxfer.audio.layers",
    "WaveAugment": "tfxfer.audio.layers",
    "build_audio_classifier": "tfxfer.audio.model",
    "within_duration_budget": "tfxfer.audio.guard",
    "stage_fsdd": "tfxfer.audio.fsdd",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)

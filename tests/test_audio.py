"""Audio: WAV folders -> log-mel models -> exports that take raw WAV bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from audio_helpers import tone, tone_folder, write_wav

from tfxfer.audio.decode import clip_samples, decode_wav_bytes, resample
from tfxfer.audio.folder import check_wav, scan_audio_folder
from tfxfer.audio.layers import LogMelSpectrogram, SpecAugment, SpectrogramImage, WaveAugment
from tfxfer.audio.model import LOG_MEL, build_audio_classifier
from tfxfer.config import AudioConfig, ImageConfig, ModelConfig, load_config
from tfxfer.modality import AUDIO, IMAGE, modality_of, modality_of_folder

RATE = 8000


def _peak_hz(waveform: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(waveform))
    return float(np.fft.rfftfreq(len(waveform), 1 / rate)[spectrum.argmax()])


def _model_config(backbone: str = "dann_mnist_cnn", size: int = 28, **audio) -> ModelConfig:
    return ModelConfig(
        image=ImageConfig(backbone=backbone, weights="none", image_size=size,
                          backbone_kwargs={"alpha": 0.25} if backbone == "mobilenet" else {}),
        audio=AudioConfig(sample_rate=RATE, clip_seconds=0.5, **audio), text=None)


def _bad_files(root: Path) -> dict[str, str]:
    """Bad files in root/low/ -> the phrase their skip reason must contain."""
    good = write_wav(root / "low" / "good.wav", tone(300, RATE, 0.3), RATE).read_bytes()
    (root / "low" / "empty.wav").write_bytes(b"")
    (root / "low" / "jpeg.wav").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 100)
    (root / "low" / "truncated.wav").write_bytes(good[:30])
    no_channel = bytearray(good)
    no_channel[22:24] = struct.pack("<H", 0)
    (root / "low" / "no_channel.wav").write_bytes(bytes(no_channel))
    (root / "low" / "notes.txt").write_text("not audio")
    return {"empty.wav": "empty file", "jpeg.wav": "not a decodable", "truncated.wav":
            "not a decodable", "no_channel.wav": "", "notes.txt": "not a WAV extension"}


def test_folders_of_wavs_are_audio_and_waveform_models_too(tmp_path):
    assert modality_of_folder(tone_folder(tmp_path / "tones", per_class=2)) == AUDIO
    (tmp_path / "pics" / "a").mkdir(parents=True)
    (tmp_path / "pics" / "a" / "x.jpg").write_bytes(b"jpeg")
    assert modality_of_folder(tmp_path / "pics") == IMAGE
    waves = keras.Input((4000,))
    mel = LogMelSpectrogram(RATE, name="log_mel")(waves)
    assert modality_of(keras.Model(waves, keras.layers.Flatten()(mel))) == AUDIO


def test_decode_resamples_to_the_model_rate_and_fits_the_clip(tmp_path):
    for rate in (8000, 16000):
        wav = tf.io.read_file(str(write_wav(tmp_path / f"{rate}.wav", tone(1000, rate, 0.3),
                                            rate)))
        out = decode_wav_bytes(wav, RATE, 4000).numpy()
        assert out.shape == (4000,)
        assert abs(_peak_hz(out[:2400], RATE) - 1000) < 10  # the same pitch after resampling
        assert np.all(out[2400:] == 0)  # zero-padded at the end
    long = decode_wav_bytes(tf.io.read_file(str(write_wav(
        tmp_path / "long.wav", tone(500, RATE, 1.0, channels=2), RATE))), RATE, 4000)
    assert long.shape == (4000,) and np.abs(long.numpy()).min() < 1.0  # stereo -> mono, cropped
    assert resample(tf.zeros([0]), 16000, 8000).shape == (0,)


def test_scan_names_and_skips_bad_files(tmp_path, caplog):
    root = tone_folder(tmp_path / "tones", per_class=3)
    bad = _bad_files(root)
    folder = scan_audio_folder(root)
    skipped = {Path(s.path).name: s.reason for s in folder.skipped}
    assert set(skipped) == set(bad)
    for name, phrase in bad.items():
        assert phrase in skipped[name]
    assert "good.wav" in {Path(p).name for p in folder.paths} and len(folder.paths) == 7
    assert sorted(set(folder.sample_rates)) == [8000, 16000]
    assert "no_channel.wav" in caplog.text
    assert check_wav(str(root / "low" / "good.wav")) == (None, RATE)


def test_front_end_layers_shapes_and_training_only_augmentation():
    waves = tf.constant(np.stack([tone(300, RATE, 0.5)[:, 0], tone(1500, RATE, 0.5)[:, 0]])
                        / 32767.0, tf.float32)
    mel = LogMelSpectrogram(RATE, n_mels=32)(waves)
    assert mel.shape == (2, 1 + (4000 - 200) // 80, 32)
    assert float(tf.reduce_max(mel)) == 0.0 and float(tf.reduce_min(mel)) >= -80.0
    low, high = np.asarray(mel).mean(axis=1).argmax(axis=1)
    assert low < high  # the higher tone lights up higher mel bands
    picture = SpectrogramImage(28)(mel)
    assert picture.shape == (2, 28, 28, 3) and 0 <= float(tf.reduce_min(picture))
    for layer, x in ((WaveAugment(0.2, 0.05, 0.1, seed=1), waves), (SpecAugment(2, 8, 10, seed=1),
                                                               mel)):
        np.testing.assert_array_equal(layer(x, training=False), x)
        assert not np.allclose(layer(x, training=True), x)


def test_band_norm_removes_a_constant_tilt_and_keeps_silence_at_the_floor():
    layer = LogMelSpectrogram(RATE, n_mels=8, band_norm=True)
    rng = np.random.default_rng(0)
    voiced = rng.uniform(-30.0, 0.0, (1, 6, 8)).astype(np.float32)
    silent = np.full((1, 3, 8), -80.0, np.float32)
    db = np.concatenate([voiced, silent], axis=1)
    tilt = np.concatenate([np.linspace(-12.0, 0.0, 8)[None, None, :].repeat(6, 1),
                           np.zeros((1, 3, 8))], axis=1).astype(np.float32)
    plain, tilted = layer._normalise_bands(db), layer._normalise_bands(db + tilt)
    np.testing.assert_allclose(tilted, plain, atol=1e-4)
    assert float(tf.reduce_max(plain)) == 0.0
    assert np.all(np.asarray(plain)[0, 6:] == -np.inf)  # floored to -top_db by call()
    means = np.asarray(plain)[0, :6].mean(axis=0)
    np.testing.assert_allclose(means - means.max(), 0.0, atol=1e-4)  # every band centred
    waves = tf.constant(tone(300, RATE, 0.5)[None, :, 0] / 32767.0, tf.float32)
    normed = layer(waves)
    assert float(tf.reduce_max(normed)) == 0.0 and float(tf.reduce_min(normed)) >= -80.0
    assert LogMelSpectrogram.from_config(layer.get_config()).band_norm
    assert not np.allclose(normed, LogMelSpectrogram(RATE, n_mels=8)(waves))


@pytest.mark.parametrize("backbone,size", [("dann_mnist_cnn", 28), ("mobilenet", 32)])
def test_audio_classifier_shapes_and_save_load(tmp_path, backbone, size):
    model = build_audio_classifier(_model_config(backbone, size), 3)
    assert model.inputs[0].shape == (None, 4000) and modality_of(model) == AUDIO
    waves = np.random.default_rng(0).normal(0, 0.1, (2, 4000)).astype("float32")
    out = model.predict(waves, verbose=0)
    assert out.shape == (2, 3) and np.all(np.isfinite(out))
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(waves, verbose=0), out, atol=1e-6)
    assert again.get_layer(LOG_MEL).sample_rate == RATE


def _train_tones(tmp_path: Path):
    from tfxfer.experiment import train

    root = tone_folder(tmp_path / "tones", per_class=6)
    _bad_files(root)
    config = load_config(None, {
        "data": {"source": str(root), "batch_size": 4, "val_fraction": 0.2,
                 "test_fraction": 0.2},
        "model": {"image": {"backbone": "dann_mnist_cnn", "weights": "none", "image_size": 28},
                  "audio": {"sample_rate": RATE, "clip_seconds": 0.5}},
        "train": {"strategy": "from_scratch", "epochs": 1, "fine_tune_epochs": 0,
                  "learning_rate": 0.003, "verbose": 0},
        "out": str(tmp_path / "run")})
    return root, train(config)


def test_train_export_and_serve_raw_wav_bytes(tmp_path):
    from tfxfer.serving.export import ExportError, export_run  # noqa: F401

    root, result = _train_tones(tmp_path)
    assert result.splits.modality == AUDIO and len(result.splits.skipped) == 5
    assert result.config.model.audio is not None and result.config.model.text is None
    assert (tmp_path / "run" / "prediction_grid.png").is_file()  # spectrogram thumbnails
    exported = export_run(tmp_path / "run", tmp_path / "models", "tones", max_audio_seconds=2)
    assert exported.modality == AUDIO
    assert set(exported.signatures) == {"serving_default", "serving_waveform"}
    loaded = tf.saved_model.load(str(exported.path))
    files = [root / "low" / "0.wav", root / "high" / "1.wav", root / "low" / "3.wav"]
    encoded = tf.constant([f.read_bytes() for f in files])
    served = loaded.signatures["serving_default"](inputs=encoded)
    waves = tf.stack([decode_wav_bytes(e, RATE, clip_samples(RATE, 0.5)) for e in encoded])
    np.testing.assert_allclose(served["probabilities"], result.model(waves, training=False),
                               atol=1e-5)
    too_long = write_wav(tmp_path / "long.wav", tone(300, RATE, 3.0), RATE).read_bytes()
    with pytest.raises(tf.errors.InvalidArgumentError, match="over the audio budget of 2 s"):
        loaded.signatures["serving_default"](inputs=tf.constant([too_long]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serving_default"](inputs=tf.constant([b"RIFF not a wav"]))


@pytest.mark.assets
def test_real_spoken_digits_decode_and_scan(assets, tmp_path):
    recordings = assets / "audio" / "recordings"
    for digit in ("0", "7"):
        for index in range(3):
            src = recordings / f"{digit}_jackson_{index}.wav"
            (tmp_path / digit).mkdir(exist_ok=True)
            (tmp_path / digit / src.name).symlink_to(src)
    folder = scan_audio_folder(tmp_path)
    assert folder.skipped == [] and set(folder.sample_rates) == {8000}
    assert folder.class_names == ["0", "7"] and len(folder.paths) == 6
    waves = tf.stack([decode_wav_bytes(tf.io.read_file(p), RATE, 4000) for p in folder.paths])
    assert waves.shape == (6, 4000) and float(tf.reduce_max(tf.abs(waves))) > 0.05
    model = build_audio_classifier(_model_config(), 2)
    assert model.predict(waves, verbose=0).shape == (6, 2)


def test_fsdd_staging_official_and_leave_one_speaker_out(tmp_path):
    from tfxfer.audio.fsdd import speakers, stage_fsdd

    flat = tmp_path / "recordings"
    for digit in "07":
        for speaker in ("ann", "bob"):
            for index in range(7):
                write_wav(flat / f"{digit}_{speaker}_{index}.wav", tone(300, RATE, 0.1), RATE)
    (flat / "README.txt").write_text("not a recording")
    assert speakers(flat) == ["ann", "bob"]
    train, test = stage_fsdd(flat, tmp_path / "official")
    assert sorted(p.name for p in (test / "0").iterdir()) == [
        f"0_{s}_{i}.wav" for s in ("ann", "bob") for i in range(5)]
    assert len(list((train / "7").iterdir())) == 4
    train, test = stage_fsdd(flat, tmp_path / "bob", "speaker:bob")
    assert {p.name.split("_")[1] for p in test.rglob("*.wav")} == {"bob"}
    assert {p.name.split("_")[1] for p in train.rglob("*.wav")} == {"ann"}
    with pytest.raises(ValueError, match="ann"):
        stage_fsdd(flat, tmp_path / "x", "speaker:carol")


def test_speech_app_trains_digit_and_speaker_heads(tmp_path):
    import importlib.util
    import json

    flat = tmp_path / "recordings"
    for digit, hz in (("0", 300.0), ("7", 1500.0)):
        for speaker in ("ann", "bob"):
            for index in range(7):
                seconds = 0.2 if speaker == "ann" else 0.4  # a speaker is a length here
                write_wav(flat / f"{digit}_{speaker}_{index}.wav", tone(hz, RATE, seconds,
                                                                        phase=index), RATE)
    app = Path(__file__).resolve().parents[1] / "apps" / "speech" / "train.py"
    spec = importlib.util.spec_from_file_location("speech_app", app)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tiny = ["--recordings", str(flat), "--weights", "none", "--image-size", "32",
            "--strategy", "from_scratch", "--epochs", "1", "--fine-tune-epochs", "0",
            "--verbose", "0", "--no-tensorboard"]
    assert module.main([*tiny, "--target", "digit,speaker", "--out", str(tmp_path / "run")]) == 0
    outputs = json.loads((tmp_path / "run" / "outputs.json").read_text())
    assert [(o["name"], o["task"], o["names"]) for o in outputs] == [
        ("digit", "classification", ["0", "7"]), ("speaker", "classification", ["ann", "bob"])]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["outputs"]
    assert metrics["digit"]["examples"] == metrics["speaker"]["examples"] == 20  # indices 0-4
    with pytest.raises(ValueError, match="needs split 'official'"):
        module.main([*tiny, "--target", "speaker", "--split", "speaker:bob",
                     "--out", str(tmp_path / "refused")])


@pytest.mark.parametrize("fine_tune_batchnorm", [False, True])
def test_fine_tune_batchnorm_leaves_batchnorm_trainable_in_phase_two(fine_tune_batchnorm):
    from tfxfer.config import TrainConfig
    from tfxfer.training.strategies import Phase, set_phase_trainable, walk_layers

    model = build_audio_classifier(_model_config("mobilenet", 32), 3,
                                   train_batchnorm=fine_tune_batchnorm)
    norms = [la for la in walk_layers(model.get_layer("backbone"))
             if isinstance(la, keras.layers.BatchNormalization)]
    train = TrainConfig(fine_tune_batchnorm=fine_tune_batchnorm)
    set_phase_trainable(model, Phase("head", 1, 1e-3, "none"), train)
    assert not any(la.trainable for la in norms)
    set_phase_trainable(model, Phase("fine_tune", 1, 1e-4, "all"), train)
    assert all(la.trainable for la in norms) == fine_tune_batchnorm
    waves = np.random.default_rng(1).normal(0, 0.1, (4, 4000)).astype("float32")
    before = [np.array(v) for v in norms[0].non_trainable_weights]
    model(waves, training=True)  # moving statistics move only when BatchNorm trains
    moved = any(not np.allclose(a, b) for a, b in zip(before, norms[0].non_trainable_weights))
    assert moved == fine_tune_batchnorm

"""Spoken digits: classify FSDD recordings with an ImageNet CNN on log-mel spectrograms.

Transfer learning from pictures to sound (Palanisamy et al. 2020): every WAV becomes
a log-mel spectrogram inside the model, drawn as a 96x96 picture, and a MobileNet v1
(alpha 0.25) pretrained on ImageNet learns to read it. Phase 1 trains the new head,
phase 2 fine-tunes the whole backbone at a 10x lower learning rate.

    python apps/speech/train.py                                   # official split
    python apps/speech/train.py --split speaker:theo              # unseen speaker
    python apps/speech/train.py --strategy from_scratch           # same net, random init
    python apps/speech/train.py --weights PATH/mobilenet_2_5_224_tf_no_top.h5
    python apps/speech/train.py --target digit,speaker            # multi-task: both heads

`--recordings` is FSDD's `recordings/` folder (default $TFXFER_ASSETS/audio/recordings).
Settings come from `config.yaml` beside this script; every `tfxfer train` flag
overrides it. The exported model takes raw WAV bytes (any rate; resampled to 8 kHz).

With `--target digit,speaker` (or `--target speaker`) one backbone learns both from
each file name (`digit_speaker_index.wav`) with one head per target
(`tfxfer.tasks`); the export answers `digit_class_name` and `speaker_class_name`.
"""

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import tfxfer

CONFIG = Path(__file__).with_name("config.yaml")
WEIGHTS = Path("keras", "models", "mobilenet_2_5_224_tf_no_top.h5")
logger = logging.getLogger("apps.speech")


def _app_arguments(argv):
    assets = Path(os.environ.get("TFXFER_ASSETS", "../shared/assets"))
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--recordings", default=str(assets / "audio" / "recordings"),
                        help="FSDD's recordings/ folder")
    parser.add_argument("--split", default="official",
                        help="'official' (indices 0-4 test) or 'speaker:NAME' (NAME tests)")
    parser.add_argument("--stage-dir", help="where the class folders of links are made "
                        "(default: a folder under the system temp dir)")
    args, rest = parser.parse_known_args(argv)
    return args, rest, assets


def _task_splits(args: argparse.Namespace, config):
    """Digit and/or speaker targets: FSDD's split as tables of path, digit, speaker."""
    from tfxfer.audio.fsdd import fsdd_tables
    from tfxfer.tasks.table import load_task_frames

    train, test = fsdd_tables(args.recordings, args.split)
    # Digits are classes, not numbers: a target without a task is a classification.
    config.data.target = ",".join(t if ":" in t else f"{t.strip()}:classification"
                                  for t in config.data.target.split(","))
    config.data.source = config.data.test_source = args.recordings  # recorded in config.json
    config.data.audio_column = "path"
    return load_task_frames(train, config.data, test, audio=config.model.audio)


def _stage_folders(args: argparse.Namespace, config) -> None:
    """One target, the digit: FSDD's recordings linked into train/<digit>/, test/<digit>/."""
    from tfxfer.audio.fsdd import stage_fsdd

    stage = args.stage_dir or Path(tempfile.gettempdir(), "tfxfer-fsdd",
                                   args.split.replace(":", "-"))
    train_dir, test_dir = stage_fsdd(args.recordings, stage, args.split)
    config.data.source, config.data.test_source = str(train_dir), str(test_dir)


def main(argv: list[str] | None = None) -> int:
    args, rest, assets = _app_arguments(sys.argv[1:] if argv is None else argv)
    config = tfxfer.parse_train_config(rest, config_file=CONFIG, description=__doc__)
    # The data: FSDD's flat recordings split as chosen (official: indices 0-4 test); a
    # tenth of the training files is held out for validation.
    if config.data.target:
        splits = _task_splits(args, config)
    else:
        _stage_folders(args, config)
        splits = None  # the Experiment reads the staged folders

    image = config.model.image
    if image.weights == "imagenet" and (assets / WEIGHTS).is_file():
        image.weights = str(assets / WEIGHTS)  # the ImageNet file, read offline
        logger.info("ImageNet weights from %s", image.weights)

    # The model takes float waveforms (8,000 samples); the log-mel spectrogram, its
    # picture, SpecAugment masks, time shift and noise (training only) are inside it.
    run = tfxfer.Experiment(config)
    splits = run.load_data(splits)
    summary = splits.summary()
    print(f"split {args.split}: counts {summary.get('counts') or summary['labelled']}")
    run.build_model()

    # Phase 1 trains the head on the frozen backbone; phase 2 (fine_tune_all) the
    # whole backbone, its BatchNorm statistics included (config: fine_tune_batchnorm).
    # `from_scratch` trains one phase from random.
    for phase in run.phases:
        run.fit(phase)

    evaluation = run.evaluate()
    if evaluation is not None:
        print(evaluation.table())
    result = run.save()
    shown = "" if config.data.target else " (report.html shows test spectrograms)"
    print(f"run directory: {result.run_dir}{shown}")
    print(f"next: tfxfer export {result.run_dir} --name speech --verify && "
          "tfxfer serve saved_models")
    return 0


if __name__ == "__main__":
    sys.exit(main())

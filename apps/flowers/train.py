"""Flowers: classify tf_flowers photos with a backbone pretrained on ImageNet.

The classic transfer-learning recipe (keras-io `transfer_learning`): a MobileNetV2
trained on ImageNet, frozen, under a new 5-class head (phase 1); then the top 30%
of its layers unfrozen at a 50x lower learning rate (phase 2).

    python apps/flowers/train.py      # tf_flowers from TFDS, ImageNet weights from Keras
    python apps/flowers/train.py --data ../shared/assets/flower_photos \
        --backbone mobilenet --backbone-arg alpha=0.25     # offline: any class-per-folder tree

Settings come from `config.yaml` beside this script; every `tfxfer train` flag
(--data, --test-data, --backbone, --backbone-arg, --weights, --strategy, --epochs,
--out, ...) overrides it. The run directory is the one `tfxfer train` writes.
"""

import sys
from pathlib import Path

import tfxfer

CONFIG = Path(__file__).with_name("config.yaml")


def main(argv: list[str] | None = None) -> int:
    config = tfxfer.parse_train_config(argv, config_file=CONFIG, description=__doc__)

    # Load the data: class-per-folder photos (or tfds:tf_flowers), split per class
    # into train / validation / test. Photos stay encoded until the tf.data pipeline
    # decodes and resizes them in parallel.
    run = tfxfer.Experiment(config)
    splits = run.load_data()
    print(f"classes {splits.class_names}, counts {splits.summary()['counts']}")

    # Build the model: it takes raw uint8 photos; resizing, augmentation and the
    # backbone's own preprocessing live inside it, so an export needs no client code.
    # On top of the frozen backbone: pooling, dropout, a small hidden layer, softmax.
    run.build_model()

    # Phase 1: train the new head on the frozen backbone. Its features never change,
    # so they are computed once (for 5 augmented copies of each photo) and cached.
    head, *fine_tune = run.phases
    run.fit(head)

    # Phase 2: unfreeze the top 30% of the backbone (BatchNorm stays frozen) and
    # fine-tune everything at a 50x lower learning rate. `--strategy
    # feature_extraction` has no phase 2; `from_scratch` trains one phase from random.
    for phase in fine_tune:
        run.fit(phase)

    # Evaluate on the held-out test photos: accuracy, per-class F1, confusion matrix.
    evaluation = run.evaluate()
    if evaluation is not None:
        print(evaluation.table())

    # Report: model.keras, metrics, plots and report.html in the run directory.
    result = run.save()
    print(f"run directory: {result.run_dir}")

    # Export for TF Serving (raw JPEG bytes in, class names out), then serve it:
    print(f"next: tfxfer export {result.run_dir} --name flowers --verify && "
          "tfxfer serve saved_models")
    return 0


if __name__ == "__main__":
    sys.exit(main())

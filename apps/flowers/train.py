"""Flowers: classify tf_flowers photos with a pretrained ImageNet backbone.

The classic transfer-learning example (keras-io `transfer_learning`): a
MobileNetV2 trained on ImageNet, frozen, under a new 5-class head (phase 1),
then the top 30% of its layers unfrozen with a 50x lower learning rate
(phase 2). Data come from TFDS `tf_flowers`; the weights from Keras.

Run (downloads tf_flowers and the ImageNet weights on first use):

    python apps/flowers/train.py

Offline, with any folder of class subfolders and weights in $KERAS_HOME/models:

    python apps/flowers/train.py --data ../shared/assets/flower_photos \
        --backbone mobilenet --backbone-arg alpha=0.25

Any `tfxfer train` flag overrides `config.yaml` beside this script. The run
directory (printed at the end) holds the model, metrics and history.
"""

import sys
from pathlib import Path

from tfxfer import cli

CONFIG = Path(__file__).with_name("config.yaml")


def main(argv: list[str]) -> int:
    return cli.main(["train", "--config", str(CONFIG), *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

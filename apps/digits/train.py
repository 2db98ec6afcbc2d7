"""Digits: one domain-adaptation run with the DANN paper's CNN (the table is run.py).

Trains one arm over `config.yaml` beside this script; every `tfxfer train` flag
overrides it. With the folders `run.py` (or `tfxfer build-mnist-m`) writes:

    python apps/digits/train.py --data runs/digits/data/mnist \
        --target-data runs/digits/data/mnist_m/train \
        --target-test-data runs/digits/data/mnist_m/test \
        --test-data runs/digits/data/mnist_m/test --strategy domain_adaptation

Drop `--target-data`/`--target-test-data` and use `--strategy from_scratch` for the
source-only arm.
"""

import sys
from pathlib import Path

import tfxfer

CONFIG = Path(__file__).with_name("config.yaml")


def main(argv: list[str] | None = None) -> int:
    config = tfxfer.parse_train_config(argv, config_file=CONFIG, description=__doc__)

    # Source digits (labelled) split into train / validation; with
    # --strategy domain_adaptation the unlabelled target images join every step.
    run = tfxfer.Experiment(config)
    run.load_data()
    run.build_model()

    # The paper's CNN has no pretrained weights: one phase, everything trainable.
    for phase in run.phases:
        run.fit(phase)

    # Test accuracy (on the target test folder when --test-data names it).
    evaluation = run.evaluate()
    if evaluation is not None:
        print(evaluation.table())
    result = run.save()
    print(f"run directory: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

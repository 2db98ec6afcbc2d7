"""Training: which layers train in which phase, and how each phase is fitted fast.

    strategies.py    the strategies' phases; which layers train (BatchNorm stays frozen)
    trainer.py       PhaseTrainer: two-phase fit with one joined history
    optimizers.py    optimizers, per-layer learning rates, the warmup schedule
    resume.py        per-epoch checkpoints and `tfxfer train --resume`
    bottleneck.py    phase 1 on cached backbone/encoder features
    boundary.py      phase 2 on cached activations at the unfreeze boundary
    frozen.py        the frozen part of a model compiled with its weights as constants
    feature_norm.py  a cut's feature standardisation, fitted to the training split
"""

"""Unsupervised domain adaptation: domain-adversarial training (DANN, Ganin & Lempitsky).

    GradientReversal          identity forward, -λ·gradient backward (λ a variable)
    DomainAdversarialModel    a tfxfer classifier plus a domain head on its pooled features
    DomainAdaptation          the phases of `tfxfer train --strategy domain_adaptation`
    grl_lambda, annealed_learning_rate   the paper's λ_p and η_p schedules
    build_mnist_m             MNIST-M from MNIST digits and any folder of colour photos

Names are imported on first use, so `tfxfer --help` (which lists the
`build-mnist-m` command) does not load TensorFlow.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AdaptationSchedule": "schedules",
    "annealed_learning_rate": "schedules",
    "grl_lambda": "schedules",
    "GradientReversal": "layers",
    "DomainAdversarialModel": "model",
    "build_domain_head": "model",
    "DomainAdaptation": "training",
    "TargetImages": "data",
    "scan_target_images": "data",
    "build_mnist_m": "digits",
    "build_usps": "digits",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfxfer.adaptation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"tfxfer.adaptation.{_EXPORTS[name]}"), name)

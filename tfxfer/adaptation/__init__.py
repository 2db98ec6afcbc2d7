"""Unsupervised domain adaptation: domain-adversarial training (DANN, Ganin & Lempitsky).

    GradientReversal          identity forward, -λ·gradient backward (λ a variable)
    DomainAdversarialModel    a tfxfer classifier plus a domain head on its pooled features
    DomainAdaptation          the phases of `tfxfer train --strategy domain_adaptation`
    grl_lambda, annealed_learning_rate   the paper's λ_p and η_p schedules
    build_mnist_m             MNIST-M from MNIST digits and any folder of colour photos
    build_usps, mnist_frame   USPS folders, its digits put into MNIST's 20-in-28 frame
    reverse_validate          chooses λ's ceiling without target labels (`lambda_max: auto`)
    bound_score, proxy_a_distance   the label-free terms of DANN's bound, to compare adapted runs
    compare_arms, arms_table  source only vs DANN vs train on target on a domain pair (arms.py)
    digit_pairs               MNIST -> MNIST-M and MNIST -> USPS folders, built once

Names are imported on first use, so `tfxfer --help` (which lists the
`build-mnist-m` command) does not load TensorFlow.
"""

from __future__ import annotations

from tfxfer.utils.lazy import lazy_getattr

_EXPORTS = {
    "AdaptationSchedule": "tfxfer.adaptation.schedules",
    "annealed_learning_rate": "tfxfer.adaptation.schedules",
    "grl_lambda": "tfxfer.adaptation.schedules",
    "GradientReversal": "tfxfer.adaptation.layers",
    "DomainAdversarialModel": "tfxfer.adaptation.model",
    "build_domain_head": "tfxfer.adaptation.model",
    "DomainAdaptation": "tfxfer.adaptation.training",
    "ReverseValidation": "tfxfer.adaptation.reverse_validation",
    "choose_lambda": "tfxfer.adaptation.reverse_validation",
    "reverse_validate": "tfxfer.adaptation.reverse_validation",
    "bound_score": "tfxfer.adaptation.bound",
    "proxy_a_distance": "tfxfer.adaptation.bound",
    "TargetImages": "tfxfer.adaptation.data",
    "scan_target_images": "tfxfer.adaptation.data",
    "build_mnist_m": "tfxfer.adaptation.digits",
    "build_usps": "tfxfer.adaptation.digits",
    "mnist_frame": "tfxfer.adaptation.digits",
    "digit_pairs": "tfxfer.adaptation.digits",
    "ArmSettings": "tfxfer.adaptation.arms",
    "DomainPair": "tfxfer.adaptation.arms",
    "arms_table": "tfxfer.adaptation.arms",
    "compare_arms": "tfxfer.adaptation.arms",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)

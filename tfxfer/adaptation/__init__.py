"""Unsupervised domain adaptation: domain-adversarial training (DANN, Ganin & Lempitsky).

    GradientReversal          identity forward, -λ·gradient backward (λ a variable)
    DomainAdversarialModel    a tfxfer classifier plus a domain head on its pooled features
    DomainAdaptation          the phases of `tfxfer train --strategy domain_adaptation`
    grl_lambda, annealed_learning_rate   the paper's λ_p and η_p schedules
    build_mnist_m             MNIST-M from MNIST digits and any folder of colour photos
"""

from tfxfer.adaptation.data import TargetImages, scan_target_images
from tfxfer.adaptation.layers import GradientReversal
from tfxfer.adaptation.model import DomainAdversarialModel, build_domain_head
from tfxfer.adaptation.schedules import AdaptationSchedule, annealed_learning_rate, grl_lambda
from tfxfer.adaptation.training import DomainAdaptation

__all__ = [
    "AdaptationSchedule",
    "DomainAdaptation",
    "DomainAdversarialModel",
    "GradientReversal",
    "TargetImages",
    "annealed_learning_rate",
    "build_domain_head",
    "grl_lambda",
    "scan_target_images",
]

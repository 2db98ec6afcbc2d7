"""Continual learning: add classes to a trained run without forgetting the old ones.

`tfxfer train --from RUN_DIR --data NEW_SOURCE` continues a finished run (the parent):

    lineage.py       the parent run: checks (backbone, modality, task), the union of the
                     classes (same-name classes merged), lineage.json (parent, class history)
    growth.py        the child's head grown from the parent's: old rows copied, new ones fresh
    distillation.py  Learning without Forgetting: the loss (cross-entropy + the parent's
                     soft outputs at temperature T distilled into the old classes' outputs)
                     and the labels that carry those outputs beside each example
    exemplars.py     exemplars per class (herding on pooled features, or random) kept in
                     RUN_DIR/exemplars.csv for a later child's rehearsal
    data.py          the child's splits: new data relabelled into the union, the parent's
                     exemplars added to training, the parent's test split added to test
    evaluation.py    test accuracy on the old and the new classes separately
    experiment.py    `ContinualMixin`: the steps of a child (or of a run that keeps
                     exemplars); `tfxfer.experiment.ContinualExperiment` mixes it into
                     `Experiment`, and `tfxfer.experiment.train` picks that class

See docs/continual.md.
"""

from tfxfer.continual.lineage import wants_continual

__all__ = ["wants_continual"]

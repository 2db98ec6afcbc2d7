"""The parent run of a continual run: checks, the union of classes, lineage.json.

lineage.json (in the child's run directory):

    parent          absolute path of the parent run directory
    parent_classes  the parent's classes, in its class-id order
    new_classes     the new data's classes that the parent did not have
    merged          the new data's classes that the parent had already (same name)
    classes         the child's classes: the parent's, then the new ones
    history         one entry per run of the lineage, oldest first: its run directory,
                    data source and the classes it added
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import keras

from tfxfer import rundir
from tfxfer.config import RunConfig
from tfxfer.modality import IMAGE, TEXT

logger = logging.getLogger(__name__)

LINEAGE = "lineage.json"

# Model settings that decide the weights' shapes or meaning: a child must share them.
_ARCHITECTURE = {
    IMAGE: ("backbone", "backbone_kwargs", "image_size", "pooling", "feature_layer"),
    TEXT: ("encoder", "sequence_length", "text_pooling"),
}


def wants_continual(config: RunConfig, resume: str | Path | None = None) -> bool:
    """Whether a run needs `ContinualExperiment`: it has a parent or keeps exemplars
    (for `resume`, as the run's saved config says)."""
    if resume is not None and Path(resume, rundir.CONFIG).is_file():
        saved = json.loads(Path(resume, rundir.CONFIG).read_text()).get("continual") or {}
        return bool(saved.get("parent") or saved.get("exemplars"))
    return bool(config.continual.parent or config.continual.exemplars)


@dataclass
class Parent:
    """A finished run to continue.

    Attributes:
        run_dir: its run directory.
        config: its resolved config.
        model: its trained model.
        class_names: its classes, in class-id order.
    """

    run_dir: Path
    config: RunConfig
    model: keras.Model
    class_names: list[str]

    @property
    def modality(self) -> str:
        return IMAGE if self.config.model.image is not None else TEXT


def load_parent(run_dir: str | Path) -> Parent:
    """Loads a finished run (config, model, labels) and checks it is a classifier.

    Raises:
        FileNotFoundError: `run_dir` is not a finished run directory.
        ValueError: the run's model is not a single-output softmax classifier over its
            labels (another task).
    """
    run_dir = Path(run_dir).resolve()
    config, model, class_names = rundir.load_run(run_dir)
    _validate_task(run_dir, model, class_names)
    return Parent(run_dir, config, model, class_names)


def _validate_task(run_dir: Path, model: keras.Model, class_names: list[str]) -> None:
    outputs = model.outputs
    head = next((layer for layer in model.layers if layer.name == "predictions"), None)
    if len(outputs) != 1 or head is None or outputs[0].shape[-1] != len(class_names):
        raise ValueError(
            f"The parent run {run_dir} is not a single-label classifier of its "
            f"{len(class_names)} classes (outputs {[tuple(o.shape) for o in outputs]}, "
            f"a 'predictions' layer: {head is not None}); a continual run grows such a head "
            "only (different task)."
        )


def inherit_model(config: RunConfig, parent: Parent) -> RunConfig:
    """`config` with the parent's model section, refusing a different architecture.

    The child's head grows on the parent's backbone, so the settings that decide the
    weights come from the parent; a setting the command gives (one that differs from the
    defaults) that contradicts the parent's is refused with the reason. Dropout and
    augmentation may change (the parent's are kept unless the command changes them from
    the defaults; so a setting given at its default value cannot override the parent's).

    Raises:
        ValueError: the command asks for another backbone, encoder, input size,
            pooling, cut or hidden layer than the parent's.
    """
    modality = parent.modality
    mine, theirs = config.model.section(modality), parent.config.model.section(modality)
    default = type(mine)()
    clashes = [
        f"model.{modality}.{name}: the parent has {getattr(theirs, name)!r}, this run asks "
        f"for {getattr(mine, name)!r}"
        for name in _ARCHITECTURE[modality]
        if getattr(mine, name) != getattr(default, name)
        and getattr(mine, name) != getattr(theirs, name)
    ]
    if config.model.hidden_units and config.model.hidden_units != parent.config.model.hidden_units:
        clashes.append(f"model.hidden_units: the parent has {parent.config.model.hidden_units}, "
                       f"this run asks for {config.model.hidden_units}")
    if modality == IMAGE and mine.weights not in (default.weights, theirs.weights):
        logger.info("The child starts from the parent's trained weights; the parent's "
                    "model.image.weights=%r is kept, %r is not used.", theirs.weights,
                    mine.weights)
    if clashes:
        raise ValueError(
            f"The parent run {parent.run_dir} has another architecture, and a continual run "
            f"grows the parent's own head on its own backbone: {'; '.join(clashes)}. Leave "
            "these flags out (the parent's are used) or train a new run."
        )
    # Settings without weights may change; the parent's are kept unless the command
    # changes them from the defaults.
    keep = {name: getattr(mine, name) for name in ("augment", "flip", "rotation", "zoom")
            if modality == IMAGE and getattr(mine, name) != getattr(default, name)}
    section = dataclasses.replace(theirs, **keep)
    dropout = config.model.dropout
    if dropout == type(config.model)().dropout:
        dropout = parent.config.model.dropout
    model = dataclasses.replace(parent.config.model, dropout=dropout, **{modality: section})
    return dataclasses.replace(config, model=model)


def validate_modality(parent: Parent, modality: str, source: str) -> None:
    """Refuses new data of another modality than the parent's."""
    if modality != parent.modality:
        raise ValueError(
            f"The new data {source} are {modality}, the parent run {parent.run_dir} is a "
            f"{parent.modality} classifier: a continual run needs data of the parent's "
            "modality (different modality)."
        )


@dataclass(frozen=True)
class ClassUnion:
    """The child's classes: the parent's first (their ids kept), then the new ones.

    Attributes:
        classes: every class of the child, in class-id order.
        old: the parent's classes (ids 0..len(old)-1 of the child when kept).
        new: classes of the new data the parent did not have.
        merged: classes of the new data the parent had already (same name).
    """

    classes: tuple[str, ...]
    old: tuple[str, ...]
    new: tuple[str, ...]
    merged: tuple[str, ...]

    def ids(self, names) -> list[int]:
        return [self.classes.index(name) for name in names]


def class_union(old: list[str], new_data: list[str], keep: str = "old") -> ClassUnion:
    """The union of the parent's classes and the new data's; same names are merged.

    A class of the new data that has an old class's name is taken to be that class
    (a clash of names with different meanings cannot be detected): it is listed in
    `merged` and in the log.

    Args:
        old: the parent's classes.
        new_data: the new data's classes.
        keep: "old" (the union) or "none" (the new data's classes only).
    """
    merged = tuple(name for name in new_data if name in old)
    added = tuple(name for name in new_data if name not in old)
    if keep == "none":
        return ClassUnion(tuple(new_data), (), tuple(new_data), ())
    if merged:
        logger.warning("Classes of the new data that the parent has already are merged "
                       "with the parent's (same name taken as the same class): %s",
                       ", ".join(merged))
    if not added:
        logger.warning("The new data add no class to the parent's %s.", list(old))
    logger.info("Classes: the parent's %s + new %s", list(old), list(added))
    return ClassUnion(tuple(old) + added, tuple(old), added, merged)


def lineage_record(parent: Parent, union: ClassUnion, run_dir: Path, source: str) -> dict:
    """What lineage.json holds (see the module docstring)."""
    parent_file = parent.run_dir / LINEAGE
    if parent_file.is_file():
        history = json.loads(parent_file.read_text())["history"]
    else:
        history = [{"run": str(parent.run_dir), "source": parent.config.data.source,
                    "classes_added": parent.class_names}]
    history = [*history, {"run": str(Path(run_dir).resolve()), "source": source,
                          "classes_added": list(union.new)}]
    return {"parent": str(parent.run_dir), "parent_classes": parent.class_names,
            "new_classes": list(union.new), "merged": list(union.merged),
            "classes": list(union.classes), "history": history}


def write_lineage(run_dir: Path, record: dict) -> None:
    Path(run_dir, LINEAGE).write_text(json.dumps(record, indent=2) + "\n")


def read_lineage(run_dir: str | Path) -> dict | None:
    path = Path(run_dir, LINEAGE)
    return json.loads(path.read_text()) if path.is_file() else None

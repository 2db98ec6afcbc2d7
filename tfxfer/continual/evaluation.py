"""Test accuracy of a continual run on the parent's classes and on the new ones apart.

`ContinualEvaluation` is an `Evaluation` whose `to_dict` (metrics.json) gains a
`continual` section and whose `table` (what `tfxfer train` prints) two lines:

    old_classes / new_classes / merged   the class names of each group
    old_accuracy                         accuracy on the test examples of the parent's
                                         classes (merged included), predicted among all
    new_accuracy                         the same on the classes the parent did not have
    old_examples / new_examples          how many test examples each holds
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np

from tfxfer.evaluation import Evaluation


@dataclass
class ContinualEvaluation(Evaluation):
    """An Evaluation with the old and new classes' accuracies (see the module docstring)."""

    old_classes: list[str] = field(default_factory=list)
    new_classes: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)

    def _group_accuracy(self, names: list[str]) -> tuple[float, int]:
        ids = [self.class_names.index(n) for n in names]
        mask = np.isin(self.y_true, ids)
        if not mask.any():
            return float("nan"), 0
        return float(np.mean(self.y_pred[mask] == self.y_true[mask])), int(mask.sum())

    def groups(self) -> dict:
        old, n_old = self._group_accuracy(self.old_classes)
        new, n_new = self._group_accuracy(self.new_classes)
        return {"old_classes": self.old_classes, "new_classes": self.new_classes,
                "merged": self.merged, "old_accuracy": old, "old_examples": n_old,
                "new_accuracy": new, "new_examples": n_new}

    def to_dict(self) -> dict:
        return {**super().to_dict(), "continual": self.groups()}

    def table(self) -> str:
        g = self.groups()
        return "\n".join([
            super().table(),
            f"old classes accuracy: {g['old_accuracy']:.4f} ({g['old_examples']} examples: "
            f"{', '.join(self.old_classes) or '-'})",
            f"new classes accuracy: {g['new_accuracy']:.4f} ({g['new_examples']} examples: "
            f"{', '.join(self.new_classes) or '-'})",
        ])


def continual_section(run_dir: str | Path, metrics: dict | None) -> str:
    """HTML of lineage.json and the old/new accuracies for report.html ('' for other runs)."""
    path = Path(run_dir, "lineage.json")  # lineage.LINEAGE (not imported: reports import this)
    if not path.is_file():
        return ""
    lineage = json.loads(path.read_text())
    rows = "".join(
        f"<tr><td>{i}</td><td>{escape(str(h['run']))}</td><td>{escape(str(h['source']))}</td>"
        f"<td>{escape(', '.join(h['classes_added']))}</td></tr>"
        for i, h in enumerate(lineage["history"]))
    groups = (metrics or {}).get("continual")
    accuracy = "" if not groups else (
        f"<p>Test accuracy on the parent's classes: <b>{groups['old_accuracy']:.4f}</b> "
        f"({groups['old_examples']} examples); on the new classes: "
        f"<b>{groups['new_accuracy']:.4f}</b> ({groups['new_examples']} examples).</p>")
    merged = (f"<p>Merged (same name as a parent class): {escape(', '.join(lineage['merged']))}"
              "</p>" if lineage["merged"] else "")
    return (f"<h2>Continual learning</h2><p>Parent run: {escape(lineage['parent'])}</p>"
            f"{accuracy}{merged}<table><tr><th>step</th><th>run</th><th>data</th>"
            f"<th>classes added</th></tr>{rows}</table>")

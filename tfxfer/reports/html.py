"""report.html: one self-contained page per run (plots embedded as data URIs)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tfxfer.modality import TEXT
from tfxfer.reports.rundata import RunData

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #666; }
.note { color: #8a5a00; } .wrong { color: #b2182b; } code, pre { background: #f6f6f6; }
.text { max-width: 600px; white-space: pre-wrap; }
"""


@dataclass
class ReportParts:
    """What the report page shows besides the run's own files.

    Attributes:
        figures: caption -> PNG written beside report.html (embedded in the page).
        confused_pairs: rows of `confusion.confused_pairs`.
        mistakes: rows of `mistakes.most_confident_mistakes` (text runs).
        notes: sentences on what could not be drawn and why.
        tensorboard_dir: the TensorBoard log folder, when the run wrote one.
    """

    figures: dict[str, Path] = field(default_factory=dict)
    confused_pairs: list[dict] = field(default_factory=list)
    mistakes: list[dict] | None = None
    notes: list[str] = field(default_factory=list)
    tensorboard_dir: Path | None = None
    # Extra sections placed after the overview (e.g. the strategy advice).
    sections: list[str] = field(default_factory=list)


# Longer lists and texts are cut in the page; the run's CSV/JSON files hold them whole.
_MAX_ROWS = 500
_MAX_TEXT = 600


def _e(value) -> str:
    return html.escape(str(value))


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + " […]"


def _cell(value) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{_e(value)}</td>"


def _table(headers: Sequence[str] | None, rows: Sequence[Sequence]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers or ())
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def _figure(caption: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}" '
            f'data-file="{_e(path.name)}"><figcaption>{_e(caption)} '
            f"({_e(path.name)})</figcaption></figure>")


def _overview(run: RunData) -> str:
    config, metrics = run.config, run.metrics or {}
    model, train = config.get("model", {}), config.get("train", {})
    section = model.get(run.modality) or {}
    if run.modality == TEXT:
        network = section.get("encoder")
    else:
        kwargs = ", ".join(f"{k}={v}" for k, v in section.get("backbone_kwargs", {}).items())
        network = (f"{section.get('backbone')}{f'({kwargs})' if kwargs else ''}, "
                   f"{section.get('image_size')} px, weights {section.get('weights')}")
    rows = [
        ("run directory", str(run.run_dir)),
        ("data", f"{run.summary.get('source', config.get('data', {}).get('source'))} "
                 f"({run.modality}, {len(run.class_names)} classes)"),
        ("model", network),
        ("strategy", train.get("strategy")),
        ("training time", f"{sum(p.get('seconds', 0.0) for p in run.phases):.1f} s"),
    ]
    if metrics:
        rows.append(("test accuracy", f"{metrics['accuracy']:.4f}{_interval(metrics, 'accuracy')}"
                                      f" ({metrics['examples']} examples)"))
        rows.append(("macro F1", f"{metrics['macro_f1']:.4f}{_interval(metrics, 'macro_f1')}"))
    return _table(None, rows)


def _interval(metrics: dict, key: str) -> str:
    """` (95% interval 0.7780-0.8850)`, or nothing for a run from before intervals."""
    interval = metrics.get(f"{key}_interval")
    return f" (95% interval {interval[0]:.4f}-{interval[1]:.4f})" if interval else ""


def _metrics(run: RunData, parts: ReportParts) -> str:
    if not run.metrics:
        return "<h2>Metrics</h2><p>No test split (test_fraction=0): no test metrics.</p>"
    m = run.metrics
    per_class = _table(
        ("class", "precision", "recall", "F1", "support"),
        [(r["class"], r["precision"], r["recall"], r["f1"], r["support"]) for r in m["per_class"]],
    )
    pairs = (_table(("true", "predicted as", "count", "share of true class"),
                    [(p["true"], p["predicted"], p["count"], f"{p['share']:.1%}")
                     for p in parts.confused_pairs])
             if parts.confused_pairs else "<p>No test example was misclassified.</p>")
    return (f"<h2>Metrics</h2><p>Test accuracy <b>{m['accuracy']:.4f}</b>"
            f"{_interval(m, 'accuracy')} on {m['examples']} examples; "
            f"macro F1 {m['macro_f1']:.4f}{_interval(m, 'macro_f1')}.</p>"
            f"<h3>Per class</h3>{per_class}<h3>Most confused pairs</h3>{pairs}")


def _plots(parts: ReportParts) -> str:
    figures = "".join(_figure(caption, path) for caption, path in parts.figures.items())
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in parts.notes)
    mistakes = ""
    if parts.mistakes is not None:
        rows = "".join(
            f'<tr><td class="num">{m["row"]}</td><td class="text">{_e(_clip(m["input"]))}</td>'
            f'<td>{_e(m["true"])}</td><td class="wrong">{_e(m["predicted"])}</td>'
            f'<td class="num">{m["confidence"]:.1%}</td></tr>'
            for m in parts.mistakes
        )
        mistakes = ("<h3>Most confident mistakes</h3>" + (
            "<table><tr><th>row</th><th>text</th><th>true</th><th>predicted</th>"
            f"<th>confidence</th></tr>{rows}</table>" if rows else "<p>No mistakes.</p>"))
    return f"<h2>Plots</h2>{figures}{mistakes}{notes}"


def _epoch_span(phase: dict) -> str:
    first, last = phase["first_epoch"], phase["first_epoch"] + phase["epochs_run"] - 1
    return "none" if last < first else str(first) if last == first else f"{first}–{last}"


def _training(run: RunData, parts: ReportParts) -> str:
    phases = _table(
        ("phase", "epochs", "learning rate", "trainable weights", "trainable params",
         "seconds", "s / epoch"),
        [(p["name"], _epoch_span(p), float(p["learning_rate"]), p["trainable_weights"],
          p["trainable_params"], round(float(p["seconds"]), 2),
          round(p["seconds"] / p["epochs_run"], 2) if p["epochs_run"] else "")
         for p in run.phases],
    )
    keys = list(dict.fromkeys(k for row in run.history for k in row))
    history = _table(keys, [[row.get(k, "") for k in keys] for row in run.history])
    board = ""
    if parts.tensorboard_dir is not None:
        board = (f"<p>TensorBoard logs of both phases: "
                 f"<code>tensorboard --logdir {_e(parts.tensorboard_dir)}</code></p>")
    return f"<h2>Training</h2>{phases}{board}<h3>History</h3>{history}"


def _data(run: RunData) -> str:
    summary = run.summary
    counts = summary.get("counts", {})
    splits = list(counts)
    rows = [[name, *(counts[s].get(name, 0) for s in splits),
             sum(counts[s].get(name, 0) for s in splits)] for name in run.class_names]
    rows.append(["total", *(sum(counts[s].values()) for s in splits),
                 sum(sum(c.values()) for c in counts.values())])
    skipped = summary.get("skipped", [])
    skipped_html = (_table(("file", "reason"),
                           [(s["path"], s["reason"]) for s in skipped[:_MAX_ROWS]])
                    if skipped else "<p>No file was skipped.</p>")
    if len(skipped) > _MAX_ROWS:
        skipped_html += f"<p>… and {len(skipped) - _MAX_ROWS} more in data_summary.json.</p>"
    return (f"<h2>Data</h2><p>Source <code>{_e(summary.get('source', ''))}</code>.</p>"
            f"{_table(('class', *splits, 'total'), rows)}"
            f"<h3>Skipped files ({len(skipped)})</h3>{skipped_html}")


def _config(run: RunData) -> str:
    rows = []
    for section, values in run.config.items():
        if isinstance(values, dict):
            rows.extend((f"{section}.{k}", json.dumps(v)) for k, v in values.items())
        else:
            rows.append((section, json.dumps(values)))
    return f"<h2>Config</h2>{_table(('key', 'value'), rows)}"


def render_report(run: RunData, parts: ReportParts) -> str:
    """The report page of `run` as one HTML string (images embedded).

    Args:
        run: the run's files.
        parts: figures and tables made from them.

    Returns:
        A complete HTML document.
    """
    title = f"tfxfer report: {run.run_dir.name}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>{_overview(run)}{''.join(parts.sections)}"
        f"{_metrics(run, parts)}{_plots(parts)}"
        f"{_training(run, parts)}{_data(run)}{_config(run)}</body></html>\n"
    )

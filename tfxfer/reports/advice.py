"""The report's "Strategy advice" section: advice.json and the LR finder (lr_find.json)."""

from __future__ import annotations

import json
from pathlib import Path

from tfxfer.auto.advisor import ADVICE
from tfxfer.auto.lr_finder import LR_FIND_JSON, LR_FIND_PLOT
from tfxfer.reports.html import _e, _table


def _advice_html(advice: dict) -> str:
    decision = [("choice", advice["choice"]), ("strategy", advice["strategy"]),
                ("feature layer", advice.get("feature_layer") or "the top"),
                ("unfreeze from", advice.get("unfreeze_from") or "(strategy default)"),
                ("examples per class", f"{advice['examples_per_class']:g} ({advice['size']})"),
                ("similarity", advice["similarity"]),
                ("measurement", f"{advice.get('seconds', 0.0):.1f} s")]
    meanings = advice.get("meanings", {})
    signals = _table(("signal", "value in [0, 1]", "meaning"),
                     [(k, "" if v is None else float(v), meanings.get(k, ""))
                      for k, v in advice.get("signals", {}).items()])
    probes = _table(("weights", "layer", "depth", "probe accuracy", "score"),
                    [(p["weights"], p["layer"], float(p["depth"]), float(p["accuracy"]),
                      float(p["score"])) for p in advice.get("probes", [])])
    return (f"{_table(None, decision)}<p><b>Reason:</b> {_e(advice['reason'])}.</p>"
            f"<h3>Signals</h3>{signals}"
            + (f"<h3>Linear probes by depth</h3>{probes}" if advice.get("probes") else ""))


def advice_section(run_dir: str | Path) -> str:
    """HTML for the advice and LR-finder results of a run ('' when it has neither)."""
    run_dir = Path(run_dir)
    parts = []
    if (run_dir / ADVICE).is_file():
        parts.append(_advice_html(json.loads((run_dir / ADVICE).read_text())))
    if (run_dir / LR_FIND_JSON).is_file():
        lr = json.loads((run_dir / LR_FIND_JSON).read_text())
        parts.append(f"<h3>LR finder</h3><p>Suggested {_e(lr['purpose'])} learning rate "
                     f"<b>{lr['suggestion']:.3g}</b> ({len(lr['learning_rates'])} steps from "
                     f"{lr['learning_rates'][0]:.1g}, {lr['seconds']:.1f} s); the plot is "
                     f"under Plots ({LR_FIND_PLOT}).</p>")
    return f"<h2>Strategy advice</h2>{''.join(parts)}" if parts else ""

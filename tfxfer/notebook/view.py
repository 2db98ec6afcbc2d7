"""A run's report.html as an object that Jupyter renders inline.

The page is self-contained (plots embedded as data URIs, `tfxfer.reports.html`);
inline it sits in an iframe, so its stylesheet does not restyle the notebook.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Report:
    """report.html of a run.

    Attributes:
        path: the file written (RUN_DIR/report.html).
        height: pixels of the inline frame in a notebook.
    """

    path: Path
    height: int = 720

    @property
    def html(self) -> str:
        """The page itself."""
        return self.path.read_text(encoding="utf-8")

    def _repr_html_(self) -> str:
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
                f'style="width: 100%; height: {self.height}px; border: 1px solid #ddd;" '
                f'title="{html.escape(str(self.path), quote=True)}"></iframe>')

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:
        return str(self.path)

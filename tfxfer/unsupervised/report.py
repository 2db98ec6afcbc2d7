"""What `tfxfer cluster` writes: clusters.csv, map.png, report.html, class folders of links.

    OUT/clusters.csv    path (or text), cluster, distance [, label]; every item
    OUT/map.png         the items in 2-D (UMAP when umap-learn imports, else PCA),
                        coloured by cluster
    OUT/scores.json     k, silhouettes, NMI/ARI/accuracy (with labels), duplicates
    OUT/report.html     one self-contained page: scores, the map, a contact sheet per
                        cluster (the items nearest its centre: thumbnails or texts), the
                        near-duplicate pairs
    LINKS/cluster_NN/   symlinks to a cluster's images (`--link-folders`): rename the
                        folders to class names and train on LINKS
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from tfxfer.modality import IMAGE
from tfxfer.reports.plotting import new_figure, save_figure
from tfxfer.unsupervised.cluster import Clustering
from tfxfer.unsupervised.embed import Embeddings
from tfxfer.unsupervised.metrics import ClusterScores

logger = logging.getLogger(__name__)

CLUSTERS_CSV = "clusters.csv"
MAP_PNG = "map.png"
SCORES_JSON = "scores.json"
REPORT_HTML = "report.html"
# Items shown per cluster in the report, and their thumbnail side in pixels.
SHEET_ITEMS = 16
THUMBNAIL = 96
_MAX_TEXT = 300


def cluster_table(emb: Embeddings, result: Clustering) -> pd.DataFrame:
    """One row per item: the item, its cluster, its distance to the centre [, label]."""
    column = "path" if emb.modality == IMAGE else "text"
    table = pd.DataFrame({column: emb.items, "cluster": result.assignments,
                          "distance": np.round(result.distances, 5)})
    if emb.labels is not None:
        table["label"] = [emb.class_names[i] for i in emb.labels]
    return table


def map_coordinates(space: np.ndarray, seed: int = 0, method: str = "auto"
                    ) -> tuple[np.ndarray, str]:
    """2-D coordinates of the clustered vectors and the method used ("umap" or "pca").

    "auto" tries UMAP (umap-learn) and falls back to PCA when it is not installed or
    there are too few items for its neighbourhood graph.
    """
    if method not in ("auto", "umap", "pca"):
        raise ValueError(f"map method must be auto, umap or pca. Received: {method!r}")
    if method != "pca" and len(space) > 15:
        try:
            import umap
        except ImportError:
            if method == "umap":
                raise
            logger.info("umap-learn is not installed: the map uses PCA")
        else:
            reducer = umap.UMAP(n_neighbors=min(15, len(space) - 1), random_state=seed)
            return np.asarray(reducer.fit_transform(space)), "umap"
    from sklearn.decomposition import PCA

    return PCA(2, random_state=seed).fit_transform(space), "pca"


def draw_map(coords: np.ndarray, clusters: np.ndarray, method: str, path: Path,
             labels: np.ndarray | None = None) -> Path:
    """Scatter of `coords` coloured by cluster (markers by reference label when given)."""
    figure = new_figure(7, 6)
    axes = figure.add_subplot()
    cmap = "tab20" if clusters.max() >= 10 else "tab10"
    markers = "o^sDvP*X<>"
    groups = [(None, np.ones(len(coords), bool))] if labels is None else [
        (int(lab), labels == lab) for lab in np.unique(labels)]
    for lab, mask in groups:
        axes.scatter(coords[mask, 0], coords[mask, 1], c=clusters[mask], cmap=cmap,
                     vmin=0, vmax=max(clusters.max(), 1), s=12, alpha=0.8,
                     marker="o" if lab is None else markers[lab % len(markers)])
    for c in np.unique(clusters):
        centre = np.median(coords[clusters == c], axis=0)
        axes.annotate(str(c), centre, fontsize=11, weight="bold", ha="center")
    axes.set_title(f"{len(coords)} items, {clusters.max() + 1} clusters ({method.upper()})"
                   + ("; marker = reference label" if labels is not None else ""))
    axes.set_xticks([]), axes.set_yticks([])
    return save_figure(figure, path)


def link_folders(emb: Embeddings, result: Clustering, root: str | os.PathLike) -> Path:
    """A folder per cluster (cluster_00, ...) of symlinks to its images.

    Raises:
        ValueError: the items are texts, or `root` exists and is not empty.
    """
    if emb.modality != IMAGE:
        raise ValueError("--link-folders needs images; the items are texts.")
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"--link-folders {root} exists and is not empty (nothing was written).")
    width = len(str(result.k - 1))
    for i, (path, cluster) in enumerate(zip(emb.items, result.assignments)):
        folder = root / f"cluster_{cluster:0{max(width, 2)}d}"
        folder.mkdir(parents=True, exist_ok=True)
        # The index keeps two photos of the same name from different folders apart.
        (folder / f"{i:05d}_{Path(path).name}").symlink_to(Path(path).resolve())
    logger.info("Linked %d images into %d folders under %s", len(emb.items), result.k, root)
    return root


def _e(value) -> str:
    return html.escape(str(value))


def _thumbnail_uri(path: str) -> str:
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sheet(emb: Embeddings, rows: np.ndarray) -> str:
    if emb.modality == IMAGE:
        cells = []
        for r in rows:
            label = f" ({emb.class_names[emb.labels[r]]})" if emb.labels is not None else ""
            title = _e(emb.items[r] + label)
            cells.append(f'<img src="{_thumbnail_uri(emb.items[r])}" title="{title}" '
                         f'alt="{title}">')
        return f'<div class="sheet">{"".join(cells)}</div>'
    items = []
    for r in rows:
        text = emb.items[r]
        text = text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + " […]"
        label = f"<b>[{_e(emb.class_names[emb.labels[r]])}]</b> " if emb.labels is not None else ""
        items.append(f"<li>{label}{_e(text)}</li>")
    return f'<ol class="texts">{"".join(items)}</ol>'


def _cluster_sections(emb: Embeddings, result: Clustering) -> str:
    parts = []
    for c in range(result.k):
        members = np.flatnonzero(result.assignments == c)
        nearest = members[np.argsort(result.distances[members])][:SHEET_ITEMS]
        composition = ""
        if emb.labels is not None:
            counts = np.bincount(emb.labels[members], minlength=len(emb.class_names))
            top = np.argsort(-counts)[:3]
            composition = "; " + ", ".join(
                f"{emb.class_names[i]} {counts[i]}" for i in top if counts[i])
        parts.append(f"<h3>cluster {c}: {len(members)} items{_e(composition)}</h3>"
                     + _sheet(emb, nearest))
    return "".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
.sheet img { margin: 2px; border: 1px solid #eee; } .texts li { margin: .3em 0; }
img.map { max-width: 100%; }
"""


def _scores_table(summary: dict) -> str:
    rows = [("k", summary["k"]), ("items", summary["items"]), ("map", summary["map"])]
    rows += [(name, value) for name, value in (summary.get("scores") or {}).items()]
    if summary["silhouettes"]:
        rows.append(("silhouette by k", ", ".join(
            f"{k}: {v:.3f}" for k, v in summary["silhouettes"].items())))
    body = "".join(f"<tr><th>{_e(a)}</th><td>{_e(b)}</td></tr>" for a, b in rows)
    return f"<table>{body}</table>"


def _duplicates_table(emb: Embeddings, pairs: list[tuple[int, int, float]]) -> str:
    if not pairs:
        return "<p>No pair above the threshold.</p>"
    body = "".join(f"<tr><td>{_e(emb.items[i][:200])}</td><td>{_e(emb.items[j][:200])}</td>"
                   f"<td>{s:.4f}</td></tr>" for i, j, s in pairs[:200])
    return f"<table><tr><th>item</th><th>item</th><th>cosine</th></tr>{body}</table>"


def write_outputs(emb: Embeddings, result: Clustering, out: str | os.PathLike, *,
                  scores: ClusterScores | None = None,
                  duplicates: list[tuple[int, int, float]] | None = None,
                  duplicate_threshold: float | None = None, map_method: str = "auto",
                  seed: int = 0) -> dict[str, Path]:
    """Writes clusters.csv, map.png, scores.json and report.html into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"clusters": out / CLUSTERS_CSV, "map": out / MAP_PNG,
             "scores": out / SCORES_JSON, "report": out / REPORT_HTML}
    cluster_table(emb, result).to_csv(files["clusters"], index=False)
    coords, method = map_coordinates(result.space, seed, map_method)
    draw_map(coords, result.assignments, method, files["map"], emb.labels)
    duplicates = duplicates or []
    summary = {
        "items": len(emb.items), "k": result.k, "map": method,
        "silhouettes": {int(k): round(v, 4) for k, v in result.silhouettes.items()},
        "scores": scores.as_dict() if scores else None,
        "cluster_sizes": np.bincount(result.assignments, minlength=result.k).tolist(),
        "duplicate_threshold": duplicate_threshold,
        "duplicates": [{"a": emb.items[i], "b": emb.items[j], "cosine": round(s, 5)}
                       for i, j, s in duplicates],
    }
    files["scores"].write_text(json.dumps(summary, indent=2))
    map_uri = base64.b64encode(files["map"].read_bytes()).decode("ascii")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>clusters</title>"
            f"<style>{_STYLE}</style></head><body><h1>{result.k} clusters of "
            f"{len(emb.items)} {emb.modality} items</h1>{_scores_table(summary)}"
            f"<h2>Map</h2><img class='map' src='data:image/png;base64,{map_uri}' alt='map'>"
            f"<h2>Clusters (items nearest each centre)</h2>{_cluster_sections(emb, result)}"
            f"<h2>Near duplicates (cosine &ge; {_e(duplicate_threshold)})</h2>"
            f"{_duplicates_table(emb, duplicates)}</body></html>")
    files["report"].write_text(page, encoding="utf-8")
    return files

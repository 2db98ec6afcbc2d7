"""Unlabelled data: sources, embeddings files, k-means, scores, report and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import CLASS_COLOURS, make_image_folder, write_image
from text_helpers import build_tiny_encoder, review_rows, write_csv

from tfxfer import cli
from tfxfer.unsupervised.cluster import ClusterConfig, cluster_features, near_duplicates
from tfxfer.unsupervised.embed import Embeddings, load_embeddings, save_embeddings
from tfxfer.unsupervised.metrics import matched_accuracy, score_clusters
from tfxfer.unsupervised.report import link_folders
from tfxfer.unsupervised.sources import read_items


def _blobs(centres: int, per: int = 20, width: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 5, (centres, width))
    labels = np.repeat(np.arange(centres), per)
    return (means[labels] + rng.normal(0, 0.3, (len(labels), width))).astype(np.float32), labels


# --- clustering and scores ---

def test_k_means_recovers_separated_blobs():
    x, y = _blobs(3)
    result = cluster_features(x, ClusterConfig(k=3, pca_components=8))
    scores = score_clusters(y, result.assignments)
    assert scores.nmi > 0.99 and scores.ari > 0.99 and scores.accuracy == 1.0
    assert result.distances.shape == (60,) and np.all(result.distances >= 0)


@pytest.mark.parametrize("centres", [3, 5])
def test_silhouette_chooses_the_number_of_blobs(centres):
    x, _ = _blobs(centres, seed=centres)
    result = cluster_features(x, ClusterConfig(k="auto", k_range=(2, 8), n_init=3))
    assert result.k == centres
    assert set(result.silhouettes) == set(range(2, 9))
    assert max(result.silhouettes, key=result.silhouettes.get) == centres


def test_matched_accuracy_ignores_cluster_names_and_counts_extra_clusters_wrong():
    labels = np.array([0, 0, 1, 1, 2, 2])
    assert matched_accuracy(labels, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    # Four clusters for three classes: one item falls in the unmatched cluster.
    assert matched_accuracy(labels, np.array([0, 0, 1, 1, 2, 3])) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="6 labels and 5"):
        matched_accuracy(labels, np.zeros(5))


def test_invalid_cluster_settings_are_named():
    with pytest.raises(ValueError, match="k=1"):
        ClusterConfig(k=1).validate()
    with pytest.raises(ValueError, match="k_range"):
        ClusterConfig(k_range=(5, 3)).validate()
    with pytest.raises(ValueError, match="k=50 clusters need at least 50 items"):
        cluster_features(_blobs(2)[0], ClusterConfig(k=50))


def test_near_duplicates_lists_the_copied_vector_only():
    x, _ = _blobs(3, per=5)
    x = np.concatenate([x, x[[4]] * 2.0])  # a rescaled copy: cosine 1
    pairs = near_duplicates(x, threshold=0.999, block=4)
    assert [(i, j) for i, j, _ in pairs] == [(4, 15)]
    assert pairs[0][2] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="1.5"):
        near_duplicates(x, threshold=1.5)


# --- sources and embeddings files ---

def test_flat_folder_has_no_labels_and_bad_files_are_named(tmp_path, caplog):
    for i in range(3):
        write_image(tmp_path / "pile" / f"{i}.png", CLASS_COLOURS[i])
    (tmp_path / "pile" / "broken.jpg").write_bytes(b"not a jpeg")
    items = read_items(tmp_path / "pile")
    assert items.labels is None and len(items) == 3
    assert [s.path for s in items.skipped] == [str(tmp_path / "pile" / "broken.jpg")]
    assert "broken.jpg" in caplog.text


def test_class_subfolders_give_reference_labels(image_folder):
    items = read_items(image_folder)
    assert items.class_names == ["blue", "green", "red"]
    assert np.bincount(items.labels).tolist() == [6, 6, 6]


def test_missing_and_wrong_sources_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_items(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no image files"):
        read_items((tmp_path / "empty").mkdir() or tmp_path / "empty")
    csv = write_csv(tmp_path / "t.csv", review_rows(4), header=("review", "label"))
    with pytest.raises(ValueError, match="no column 'text'.*review"):
        read_items(csv)


def test_csv_labels_are_read_when_present(tmp_path):
    items = read_items(write_csv(tmp_path / "t.csv", review_rows(6)))
    assert items.modality == "text" and items.class_names == ["neg", "pos"]
    items = read_items(write_csv(tmp_path / "u.csv", [(t,) for t, _ in review_rows(6)],
                                 header=("text",)))
    assert items.labels is None


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_embeddings_round_trip(tmp_path, suffix):
    emb = Embeddings(np.arange(12, dtype=np.float32).reshape(4, 3), list("abcd"), "image",
                     np.array([0, 1, 1, 0]), ["cat", "dog"])
    save_embeddings(emb, tmp_path / f"f{suffix}")
    back = load_embeddings(tmp_path / f"f{suffix}")
    np.testing.assert_array_equal(back.features, emb.features)
    assert back.items == emb.items and back.class_names == ["cat", "dog"]
    np.testing.assert_array_equal(back.labels, emb.labels)


def test_embeddings_file_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"\.npy or \.parquet.*f\.txt"):
        save_embeddings(Embeddings(np.zeros((1, 2)), ["a"], "image"), tmp_path / "f.txt")
    np.save(tmp_path / "lone.npy", np.zeros((2, 2)))
    with pytest.raises(FileNotFoundError, match="lone.items.csv"):
        load_embeddings(tmp_path / "lone.npy")


def test_link_folders_refuses_a_non_empty_folder_and_texts(tmp_path):
    x, _ = _blobs(2, per=3)
    result = cluster_features(x, ClusterConfig(k=2, pca_components=0))
    texts = Embeddings(x, [f"t{i}" for i in range(6)], "text")
    with pytest.raises(ValueError, match="needs images"):
        link_folders(texts, result, tmp_path / "links")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    images = Embeddings(x, [str(tmp_path / f"{i}.png") for i in range(6)], "image")
    with pytest.raises(ValueError, match="not empty"):
        link_folders(images, result, tmp_path / "full")


# --- the command line, end to end ---

_CNN = ["--backbone", "dann_mnist_cnn", "--weights", "none", "--image-size", "28"]


def test_cluster_command_sorts_colour_blobs(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "images", per_class=6)
    out, links = tmp_path / "out", tmp_path / "links"
    code = cli.main(["cluster", "--data", str(folder), *_CNN, "--k", "auto",
                     "--k-range", "2", "5", "--out", str(out), "--link-folders", str(links),
                     "--duplicates", "0.9999", "--map", "pca"])
    assert code == 0
    summary = json.loads((out / "scores.json").read_text())
    assert summary["k"] == 3 and summary["scores"]["nmi"] > 0.99
    assert summary["scores"]["accuracy"] == 1.0
    table = pd.read_csv(out / "clusters.csv")
    assert list(table.columns) == ["path", "cluster", "distance", "label"] and len(table) == 18
    assert table.groupby("label")["cluster"].nunique().tolist() == [1, 1, 1]
    page = (out / "report.html").read_text()
    assert page.count("data:image/jpeg;base64") == 18 and "cluster 2" in page
    assert (out / "map.png").stat().st_size > 1000
    linked = sorted(p.name for p in links.iterdir())
    assert linked == ["cluster_00", "cluster_01", "cluster_02"]
    assert sum(len(list(p.iterdir())) for p in links.iterdir()) == 18
    assert "nmi 1.0000" in capsys.readouterr().out


def test_embed_then_cluster_the_file(tmp_path):
    folder = make_image_folder(tmp_path / "images", per_class=4)
    assert cli.main(["embed", "--data", str(folder), *_CNN, "--out",
                     str(tmp_path / "f.parquet")]) == 0
    emb = load_embeddings(tmp_path / "f.parquet")
    assert emb.features.shape == (12, 768) and len(emb.class_names) == 3
    assert cli.main(["cluster", "--data", str(tmp_path / "f.parquet"), "--k", "3", "--map",
                     "pca", "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "scores.json").read_text())["map"] == "pca"


def test_embed_texts_with_a_word_vector_encoder(tmp_path):
    encoder = build_tiny_encoder(tmp_path / "encoder")
    csv = write_csv(tmp_path / "t.csv", review_rows(8))
    assert cli.main(["embed", "--data", str(csv), "--encoder", str(encoder), "--out",
                     str(tmp_path / "t.npy")]) == 0
    emb = load_embeddings(tmp_path / "t.npy")
    assert emb.modality == "text" and emb.features.shape == (8, 4)
    # Dimension 0 carries the sentiment of the tiny vectors: the two labels separate.
    sign = np.sign(emb.features[:, 0])
    assert len(set(sign[emb.labels == 0])) == 1 and set(sign[emb.labels == 0]) != set(
        sign[emb.labels == 1])


def test_bad_paths_are_named_and_exit_2(tmp_path, caplog):
    assert cli.main(["cluster", "--data", str(tmp_path / "nowhere"), "--out",
                     str(tmp_path / "o")]) == 2
    assert "nowhere" in caplog.text
    assert cli.main(["cluster", "--data", str(tmp_path / "missing.npy")]) == 2
    assert "missing.npy" in caplog.text


@pytest.mark.large
def test_the_map_uses_umap_when_it_is_installed():
    from tfxfer.unsupervised.report import map_coordinates

    x, _ = _blobs(3)
    coords, method = map_coordinates(x, method="auto")
    assert method == "umap" and coords.shape == (60, 2) and np.isfinite(coords).all()

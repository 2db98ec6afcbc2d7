"""Unlabelled data: pretrained features, clusters, maps and self-training.

    sources.py       what `--data` names: an image folder (flat or with class
                     subfolders, whose names become reference labels) or a text CSV
    embed.py         pooled features of a source from a registry backbone or text
                     encoder (the classifier's own feature model), saved as .npy + CSV
                     or Parquet (`tfxfer embed`)
    cluster.py       L2 normalisation, PCA whitening, k-means, k by silhouette,
                     near-duplicate pairs
    metrics.py       NMI, ARI and Hungarian-matched accuracy against reference labels
    report.py        clusters.csv, the 2-D map (UMAP, PCA fallback), the HTML report
                     with a contact sheet per cluster, class folders of links
    self_training.py teacher pseudo-labels, a student on labelled + pseudo-labelled data
    commands.py      `tfxfer embed` and `tfxfer cluster`
"""

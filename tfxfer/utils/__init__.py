"""Small helpers shared by every package; none of them imports TensorFlow at module level.

    registry.py  the registry convention of backbones and encoders (names, matching, errors)
    lazy.py      public names of a package imported on first use
    cache.py     where reusable caches live, memory budget
    progress.py  tqdm progress bars, only on a terminal and without --quiet
"""

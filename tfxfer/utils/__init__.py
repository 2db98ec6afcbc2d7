"""Small helpers shared by every package; none of them imports TensorFlow at module level.

    registry.py  the registry convention of backbones and encoders (names, matching, errors)
    lazy.py      public names of a package imported on first use
    cache.py     where reusable caches live, memory budget
    atomic.py    write-then-rename of files and directories (exports, checkpoints, caches),
                 one temporary-name scheme: DIR/.STEM.tmp-PID-XXXX
    keras_compat.py  every use of a Keras / keras-hub / TensorFlow private API and every
                 patch of one, each with why and the versions it was checked on
"""

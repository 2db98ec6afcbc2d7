"""The process a run lives in: CPU/GPU options, workers, the network.

Nothing here imports TensorFlow at module level: `onednn` and `gc_policy` act
before TensorFlow is imported.

    onednn.py      oneDNN on CPU by default (decided before TensorFlow is imported)
    gc_policy.py   the garbage collector in training processes (long-lived heap frozen)
    devices.py     mixed precision and tf.distribute options
    distribute.py  multi-worker: TF_CONFIG, MultiWorkerMirroredStrategy, chief-only outputs
    launch.py      `tfxfer launch`: N local workers on 127.0.0.1, restarts with --resume
    preflight.py   paths and names of a command checked before TensorFlow is imported
    native_log.py  TensorFlow's C++ log at import filtered by TF_CPP_MIN_LOG_LEVEL
    offline.py     a refused download (TFDS, Keras weights, TF-Hub) -> one error naming the flag
"""

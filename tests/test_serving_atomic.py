"""Atomic export: exports killed (SIGKILL) at random points never leave a partial version.

Three processes export the same model name in a loop, side by side (so they also
race for version numbers and must keep each other's temporary directories);
each is killed after a random delay within about one export. Afterwards every
integer version directory must be complete and load, leftovers must be
non-integer temporary directories, and the next export must clean them up.
"""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

from tfxfer.serving import contract
from tfxfer.serving.contract import DEFAULT_SIGNATURE, LABELS_ASSET
from tfxfer.serving.export import layout

LABELS = ["a", "b", "c"]
CHILDREN = 3

CHILD = """
import sys
import time

import keras

from tfxfer.serving.export import export_model

inputs = keras.Input(shape=(1,), dtype="string")
x = keras.layers.Hashing(64, output_mode="one_hot")(inputs)
x = keras.layers.Dense(4096, activation="relu")(x)  # 1 MB of weights to write
model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
while True:
    print("exporting", flush=True)
    start = time.perf_counter()
    result = export_model(model, ["a", "b", "c"], sys.argv[1], "m", samples=["x", "y"])
    print(f"published {result.version} {time.perf_counter() - start:.3f}", flush=True)
"""


def _start(base):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(base)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)


def _first_export_seconds(process):
    for line in process.stdout:
        if line.startswith("published"):
            return float(line.split()[2])
    raise AssertionError(f"export process exited with {process.wait()} before exporting")


def _assert_complete(version_dir):
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables" / "variables.index").is_file()
    assert (version_dir / "assets" / LABELS_ASSET).read_text().splitlines() == LABELS
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()
    loaded = tf.saved_model.load(str(version_dir))
    outputs = loaded.signatures[DEFAULT_SIGNATURE](inputs=tf.constant(["x"]))
    assert outputs["probabilities"].shape == (1, 3)
    assert np.isfinite(outputs["probabilities"].numpy()).all()


def test_killed_exports_leave_only_complete_versions(tmp_path):
    rng = random.Random(4)
    model_dir = tmp_path / "m"
    processes = [_start(tmp_path) for _ in range(CHILDREN)]
    try:
        durations = [_first_export_seconds(p) for p in processes]
        start = time.monotonic()
        deadlines = sorted((rng.uniform(0.0, 1.5 * d), p) for d, p in
                           zip(durations, processes))
        for deadline, process in deadlines:
            time.sleep(max(0.0, start + deadline - time.monotonic()))
            process.send_signal(signal.SIGKILL)
            process.wait()
    finally:
        for process in processes:
            process.kill()
    mid_export = [p.stdout.read().splitlines()[-1:] == ["exporting"] for p in processes]
    assert any(mid_export), "no kill landed during an export; the test exercised nothing"

    versions = contract.list_versions(model_dir)
    assert len(versions) >= CHILDREN  # each process published at least once
    for entry in model_dir.iterdir():
        assert entry.name.isdigit() or entry.name.startswith(layout.TEMP_PREFIX), entry
    for version in versions:
        _assert_complete(model_dir / str(version))

    # The next export removes what the killed processes left and takes the next number.
    import keras

    from tfxfer.serving.export import export_model

    inputs = keras.Input(shape=(1,), dtype="string")
    x = keras.layers.Hashing(8, output_mode="one_hot")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    result = export_model(model, LABELS, tmp_path, "m", samples=["x"])
    assert result.version == versions[-1] + 1
    assert not list(model_dir.glob(f"{layout.TEMP_PREFIX}*"))

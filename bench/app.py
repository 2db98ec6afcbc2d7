"""Benchmark: the whole flowers app vs the Keras-guide recipe, same epochs, wall time.

Arms (each a fresh process, alternated after a warm-up, see bench/arms.py):
  - app:        `python apps/flowers/train.py --data DATA ...` (tfxfer: both phases on
                cached features/activations where it can, oneDNN decided by the CLI);
  - app-onednn-off: the same with TF_ENABLE_ONEDNN_OPTS=0;
  - recipe:     the same two phases written the keras-io way (`recipe` below): the frozen
                backbone under the same head with live augmentation for the app's phase-1
                epochs, then the top of the backbone unfrozen (BatchNorm frozen) at the
                app's phase-2 learning rate for its phase-2 epochs, in one run.
Both read the same split (tfxfer's loader with the app's data settings) and report test
accuracy on the same test photos. Wall time is the whole process, imports included.

    KERAS_HOME=/work/keras_home python bench/app.py \\
        --data ../shared/assets/flower_photos --repeats 3
    python bench/app.py --data ../shared/assets/flower_photos --backbone mobilenet_v2 \\
        --arms app,app-onednn-off     # the app's own backbone (random weights offline)

Goals: app >= 3x faster than the recipe with accuracy within 1 point; app >= 1.5x
faster than app-onednn-off.
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from arms import compare, load, ratio_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "apps" / "flowers"
ARMS = ("app", "recipe", "app-onednn-off")


def _app(args: argparse.Namespace) -> dict:
    backbone = ["--backbone", args.backbone]
    if args.backbone == "mobilenet":
        backbone += ["--backbone-arg", f"alpha={args.alpha}"]
    else:  # the app's own backbone; its ImageNet weights are not available offline
        backbone += ["--weights", "none"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, str(APP / "train.py"), "--data", args.data, *backbone,
             "--out", f"{tmp}/run", "--cache-dir", f"{tmp}/cache", "--verbose", "0",
             "--seed", str(args.seed)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        metrics = json.loads(Path(tmp, "run", "metrics.json").read_text())
        phases = json.loads(Path(tmp, "run", "phases.json").read_text())
    return {"accuracy": metrics["accuracy"], "modes": [p["mode"] for p in phases],
            "onednn": phases[0].get("onednn")}


def recipe(args: argparse.Namespace) -> dict:
    """The keras-io transfer-learning guide's two phases with the app's settings."""
    import keras

    from tfxfer.config import load_config
    from tfxfer.data import load_splits

    config = load_config(APP / "config.yaml", {"data": {"source": args.data, "seed": args.seed}})
    data, model_cfg, train_cfg = config.data, config.model, config.train
    image_cfg = model_cfg.image
    size = image_cfg.image_size
    splits = load_splits(data, size)  # the app's split: same training and test photos
    train_ds = splits.batches("train", data, training=True)
    val_ds = splits.batches("val", data)
    test_ds = splits.batches("test", data)
    keras.utils.set_random_seed(data.seed)

    base_model = keras.applications.MobileNet(
        weights="imagenet", input_shape=(size, size, 3), include_top=False, alpha=args.alpha
    )
    base_model.trainable = False
    augmentation = keras.Sequential([
        keras.layers.RandomFlip("horizontal"),
        keras.layers.RandomRotation(image_cfg.rotation),
        keras.layers.RandomZoom(image_cfg.zoom),
    ])
    inputs = keras.Input(shape=(None, None, 3), dtype="uint8")
    x = keras.layers.Resizing(size, size)(inputs)
    x = augmentation(x)
    x = keras.layers.Rescaling(scale=1 / 127.5, offset=-1)(x)  # MobileNet's preprocessing
    x = base_model(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(model_cfg.dropout)(x)
    x = keras.layers.Dense(model_cfg.hidden_units, activation="relu")(x)
    outputs = keras.layers.Dense(len(splits.class_names), activation="softmax")(x)
    model = keras.Model(inputs, outputs)

    # Phase 1: train the head on the frozen base model.
    model.compile(optimizer=keras.optimizers.Adam(train_cfg.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train_ds, epochs=train_cfg.epochs, validation_data=val_ds, verbose=0)

    # Phase 2: unfreeze the top of the base model; BatchNorm stays frozen (Keras 3 passes
    # the outer training flag down, so training=False above is not enough on its own).
    base_model.trainable = True
    layers = base_model.layers[1:]
    fine_tune_at = len(layers) - math.ceil(train_cfg.unfreeze_fraction * len(layers))
    for layer in layers[:fine_tune_at]:
        layer.trainable = False
    for layer in layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(train_cfg.fine_tune_learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    total = train_cfg.epochs + train_cfg.fine_tune_epochs
    model.fit(train_ds, epochs=total, initial_epoch=train_cfg.epochs,
              validation_data=val_ds, verbose=0)

    _, accuracy = model.evaluate(test_ds, verbose=0)
    return {"accuracy": float(accuracy)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder of class subfolders")
    parser.add_argument("--backbone", default="mobilenet", choices=["mobilenet", "mobilenet_v2"],
                        help="mobilenet (with --alpha, real ImageNet weights offline) or "
                        "mobilenet_v2, the app's own backbone, with random weights offline "
                        "(app arms only: times are meaningful, accuracies are not)")
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms")
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm")
    parser.add_argument("--seed", type=int, default=42, help="split and training seed")
    parser.add_argument("--worker", choices=ARMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = recipe(args) if args.worker == "recipe" else _app(args)
        print(json.dumps({**result, "wall_s": time.perf_counter() - START}))
        return

    arms = args.arms.split(",")
    if args.backbone != "mobilenet" and "recipe" in arms:
        parser.error("the recipe arm is written for --backbone mobilenet (real weights); "
                     f"received --backbone {args.backbone} with --arms {args.arms}")
    argv = ["--data", args.data, "--backbone", args.backbone, "--alpha", str(args.alpha),
            "--seed", str(args.seed)]
    results = compare(__file__, arms, argv, args.repeats, data=args.data,
                      env={"app-onednn-off": {"TF_ENABLE_ONEDNN_OPTS": "0"}})
    weights = f"alpha={args.alpha} ImageNet" if args.backbone == "mobilenet" else "random weights"
    print(f"\nflowers app ({APP / 'config.yaml'} epochs) on {args.data}, {args.backbone} "
          f"{weights}, {args.repeats} runs per arm, load average at the end "
          f"{load()} (shared machine)")
    for slow in ("recipe", "app-onednn-off"):
        if slow in arms and "app" in arms:
            print(ratio_table(results, slow, "app", "wall_s"))
    for arm in arms:
        accs = [r["accuracy"] for r in results if r["arm"] == arm]
        print(f"test accuracy {arm}: {', '.join(f'{a:.4f}' for a in accs)}")
    print("goals: app >= 3x faster than recipe, accuracy within 1 point; "
          "app >= 1.5x faster than app-onednn-off")


if __name__ == "__main__":
    main()

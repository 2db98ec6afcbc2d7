"""Digit domains for adaptation experiments: MNIST, MNIST-M and USPS as image folders.

MNIST-M is made as Ganin & Lempitsky (2015) made it: every MNIST digit is blended
with a random crop of a random colour photo, `|crop - digit|` per channel, so
the ink takes the inverted colours of the background. The paper cropped BSDS500
photos; any folder of colour photos gives the same kind of shift (the offline
assets use tf_flowers). Everything is deterministic for a seed.

`digit_partition` splits the pooled MNIST digits so that the source digits and
the digits MNIST-M is built from are disjoint, as a fair comparison needs.
`write_digit_folders` writes class folders of PNGs that `tfxfer train` reads
like any other image folder; `digit_pairs` builds both domain pairs of
apps/digits/run.py once under one folder.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tfxfer.data.images import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)


def load_digits(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, H, W], labels uint8 [N]) from an .npz with arrays `x` and `y`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Digits file not found: {path}")
    with np.load(path) as data:
        missing = {"x", "y"} - set(data.files)
        if missing:
            raise ValueError(f"{path} lacks arrays {sorted(missing)}; it has {data.files}")
        x, y = data["x"], data["y"]
    if x.ndim != 3 or len(x) != len(y):
        raise ValueError(f"{path}: expected x [N, H, W] and y [N]. Received: {x.shape}, {y.shape}")
    return x.astype(np.uint8), y.astype(np.int64)


@dataclass(frozen=True)
class DigitPartition:
    """Disjoint index sets of the pooled MNIST digits.

    Attributes:
        source: labelled source digits (MNIST train and validation).
        target_train: digits MNIST-M's train split is built from.
        target_test: digits MNIST-M's test split is built from.
    """

    source: np.ndarray
    target_train: np.ndarray
    target_test: np.ndarray


def digit_partition(
    count: int, source: int, target_train: int, target_test: int, seed: int = 0
) -> DigitPartition:
    """Splits `count` digit indices into three disjoint, seeded random sets."""
    if source + target_train + target_test > count:
        raise ValueError(
            f"The partition needs {source} + {target_train} + {target_test} digits; "
            f"only {count} are available."
        )
    order = np.random.default_rng([seed, 7]).permutation(count)
    a, b = source, source + target_train
    return DigitPartition(
        np.sort(order[:a]), np.sort(order[a:b]), np.sort(order[b:b + target_test])
    )


def load_photos(folder: str | os.PathLike, min_side: int = 28) -> list[np.ndarray]:
    """Decodes every colour photo under `folder` (RGB uint8), sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Photo folder not found: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)

    def read(path: Path) -> np.ndarray:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    with ThreadPoolExecutor(max_workers=4) as pool:
        photos = [p for p in pool.map(read, paths) if min(p.shape[:2]) >= min_side]
    if not photos:
        raise ValueError(f"No photo of at least {min_side}x{min_side} pixels under {folder}")
    return photos


def blend_with_photos(
    digits: np.ndarray, photos: list[np.ndarray], seed: int = 0
) -> np.ndarray:
    """MNIST-M: |crop - digit| per channel, a random crop of a random photo per digit.

    Args:
        digits: uint8 [N, H, W] grayscale digits (ink high).
        photos: RGB uint8 photos at least H x W.
        seed: the same seed gives the same images.

    Returns:
        uint8 [N, H, W, 3].
    """
    n, h, w = digits.shape
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(photos), size=n)
    tops = rng.random(n)
    lefts = rng.random(n)
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        photo = photos[which[i]]
        top = int(tops[i] * (photo.shape[0] - h + 1))
        left = int(lefts[i] * (photo.shape[1] - w + 1))
        crop = photo[top:top + h, left:left + w].astype(np.int16)
        out[i] = np.abs(crop - digits[i][..., None].astype(np.int16)).astype(np.uint8)
    return out


def write_digit_folders(
    images: np.ndarray, labels: np.ndarray, root: str | os.PathLike, prefix: str = "digit"
) -> Path:
    """Writes `root/<label>/<prefix>_<index>.png`, one PNG per image (grayscale or RGB)."""
    root = Path(root)
    for label in np.unique(labels):
        (root / str(int(label))).mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        path = root / str(int(labels[i])) / f"{prefix}_{i:05d}.png"
        Image.fromarray(images[i]).save(path)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(len(images))))
    logger.info("Wrote %d images to %s", len(images), root)
    return root


def build_mnist_m(
    mnist: str | os.PathLike,
    photos: str | os.PathLike,
    out: str | os.PathLike,
    *,
    source: int = 30_000,
    target_train: int = 30_000,
    target_test: int = 10_000,
    seed: int = 0,
) -> dict[str, Path]:
    """Writes MNIST (source) and MNIST-M (target) image folders from disjoint digits.

        out/mnist/<d>/*.png           `source` MNIST digits (train + validation)
        out/mnist_m/train/<d>/*.png   MNIST-M from `target_train` other digits
        out/mnist_m/test/<d>/*.png    MNIST-M from `target_test` other digits

    Args:
        mnist: the pooled MNIST .npz (`x` [N, 28, 28], `y`).
        photos: a folder of colour photos to crop backgrounds from.
        out: output folder (its subfolders must not exist yet).
        source, target_train, target_test: digits in each part.
        seed: partition and blending seed.

    Returns:
        {"source", "target_train", "target_test"} -> folder.
    """
    out = Path(out)
    folders = {"source": out / "mnist", "target_train": out / "mnist_m" / "train",
               "target_test": out / "mnist_m" / "test"}
    existing = [str(f) for f in folders.values() if f.exists()]
    if existing:
        raise FileExistsError(f"Digit folders exist already (nothing written): {existing}")
    x, y = load_digits(mnist)
    part = digit_partition(len(x), source, target_train, target_test, seed)
    backgrounds = load_photos(photos)
    write_digit_folders(x[part.source], y[part.source], folders["source"], "mnist")
    for name, offset in (("target_train", 1), ("target_test", 2)):
        idx = getattr(part, name)
        blended = blend_with_photos(x[idx], backgrounds, seed=seed * 10 + offset)
        write_digit_folders(blended, y[idx], folders[name], "mnistm")
    return folders


USPS_FRAMES = ("mnist", "resize")


def mnist_frame(
    image: np.ndarray, *, box: int = 20, size: int = 28, threshold: int = 128
) -> np.ndarray:
    """Puts one grayscale digit into MNIST's canonical frame, the way MNIST was made.

    LeCun et al. scaled each NIST digit to fit a `box` x `box` square preserving its
    aspect ratio, then placed it in a `size` x `size` field with its centre of mass
    on the centre pixel. Here the digit's extent is its bounding box of pixels at
    least `threshold` (half intensity by default: USPS strokes are blurred, so the
    faint fringe would otherwise count as ink); the whole image is scaled so that box's
    longer side is `box` pixels, and the fringe comes along. On MNIST itself the
    longer side of that box is 20 pixels and the centre of mass at pixel (14, 14)
    on average, the constants used here. When centring by mass would push part of
    the box out of the field, the shift is clamped to keep the box inside.

    Args:
        image: uint8 [H, W] digit, ink high.
        box: the longer side of the digit's box after scaling.
        size: side of the output field.
        threshold: ink level that delimits the digit's box (lowered to the image's
            maximum for a faint digit).

    Returns:
        uint8 [size, size]; all zeros for an empty image.
    """
    if image.ndim != 2:
        raise ValueError(f"mnist_frame expects one [H, W] digit. Received shape {image.shape}")
    out = np.zeros((size, size), np.uint8)
    if not image.any():
        return out
    ink = image >= min(threshold, int(image.max()))
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    scale = box / max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    h, w = image.shape
    scaled = np.asarray(Image.fromarray(image).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR))
    weights = scaled.astype(np.float64)
    com_y = (weights.sum(1) * np.arange(weights.shape[0])).sum() / weights.sum()
    com_x = (weights.sum(0) * np.arange(weights.shape[1])).sum() / weights.sum()
    # A lopsided digit (an "L") centred by its mass could push ink out of the field:
    # the shift is clamped so the digit's box stays inside, fringe may be cut.
    ink = scaled >= min(threshold, int(scaled.max()))
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    top = int(np.clip(size // 2 - round(com_y), -rows[0], size - 1 - rows[-1]))
    left = int(np.clip(size // 2 - round(com_x), -cols[0], size - 1 - cols[-1]))
    _paste(out, scaled, top, left)
    return out


def _paste(out: np.ndarray, image: np.ndarray, top: int, left: int) -> None:
    """Copies `image` into `out` with its corner at (top, left), clipped to `out`."""
    y0, x0 = max(top, 0), max(left, 0)
    y1 = min(top + image.shape[0], out.shape[0])
    x1 = min(left + image.shape[1], out.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0:y1, x0:x1] = image[y0 - top:y1 - top, x0 - left:x1 - left]


def build_usps(
    usps: str | os.PathLike, out: str | os.PathLike, *, test_fraction: float = 0.5,
    seed: int = 0, frame: str = "mnist",
) -> dict[str, Path]:
    """Writes USPS as target folders: out/usps/{train,test}/<d>/*.png (stratified split).

    Args:
        usps: the USPS .npz (`x` [N, 16, 16], `y`).
        out: output folder (out/usps must not exist yet).
        test_fraction: share of every class in the test split.
        seed: split seed.
        frame: "mnist" puts every digit into MNIST's 28x28 frame (`mnist_frame`):
            USPS digits fill their 16x16 frame, MNIST digits sit in a 20x20 box, so
            a plain resize adds a geometric shift on top of the domain shift.
            "resize" writes the 16x16 digits as they are (the data pipeline then
            stretches them to the model's input size).
    """
    if frame not in USPS_FRAMES:
        raise ValueError(f"frame must be one of {USPS_FRAMES}. Received: frame={frame!r}")
    out = Path(out)
    folders = {"target_train": out / "usps" / "train", "target_test": out / "usps" / "test"}
    if any(f.exists() for f in folders.values()):
        raise FileExistsError(f"USPS folders exist already under {out / 'usps'}")
    x, y = load_digits(usps)
    if frame == "mnist":
        x = np.stack([mnist_frame(image) for image in x])
    rng = np.random.default_rng([seed, 11])
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        test[members[: round(len(members) * test_fraction)]] = True
    write_digit_folders(x[~test], y[~test], folders["target_train"], "usps")
    write_digit_folders(x[test], y[test], folders["target_test"], "usps")
    return folders


def digit_pairs(
    assets: str | os.PathLike, root: str | os.PathLike, *, source: int = 10_000,
    target_train: int = 20_000, target_test: int = 10_000, seed: int = 0,
    usps_frame: str = "resize",
) -> dict[str, dict[str, Path]]:
    """The folders of MNIST -> MNIST-M and MNIST -> USPS under `root`, built once.

    MNIST and MNIST-M are built from ASSETS/digits/mnist.npz and ASSETS/flower_photos
    (`build_mnist_m`) and stamped with their sizes and seed (ROOT/digits.json), so a
    second call reuses them and a call with other sizes is refused; USPS is built
    from ASSETS/digits/usps.npz once per framing (ROOT/usps_<frame>), so both can
    live under one root.

    Returns:
        {"mnist_m": folders, "usps": folders}, each {"source", "target_train",
        "target_test"} -> folder (the source is the same MNIST folder).

    Raises:
        FileExistsError: `root` holds digits built with other sizes or another seed.
    """
    root, assets = Path(root), Path(assets)
    stamp = root / "digits.json"
    wanted = {"source": source, "target_train": target_train, "target_test": target_test,
              "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) != wanted:
        raise FileExistsError(f"{root} was built with {stamp.read_text()}; choose another "
                              f"folder for {wanted}.")
    mnist_m = {"source": root / "mnist", "target_train": root / "mnist_m" / "train",
               "target_test": root / "mnist_m" / "test"}
    if not stamp.is_file():
        build_mnist_m(assets / "digits" / "mnist.npz", assets / "flower_photos", root,
                      source=source, target_train=target_train, target_test=target_test,
                      seed=seed)
        stamp.write_text(json.dumps(wanted))
    usps_root = root / f"usps_{usps_frame}"
    if not (usps_root / "usps").is_dir():
        build_usps(assets / "digits" / "usps.npz", usps_root, seed=seed, frame=usps_frame)
    usps = {"source": mnist_m["source"], "target_train": usps_root / "usps" / "train",
            "target_test": usps_root / "usps" / "test"}
    return {"mnist_m": mnist_m, "usps": usps}

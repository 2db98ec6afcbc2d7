"""The Free Spoken Digit Dataset's flat layout as class folders tfxfer reads.

FSDD ships `recordings/{digit}_{speaker}_{index}.wav` (8 kHz mono, 10 digits x 6
speakers x 50). `stage_fsdd` links them into `OUT/train/<digit>/` and
`OUT/test/<digit>/` for one of two splits:

    "official"       the dataset README's: indices 0-4 of every digit and speaker test
    "speaker:NAME"   speaker-independent: NAME's recordings test, the others train

Files are symlinked, never copied. `data.source = OUT/train`, `data.test_source =
OUT/test`.

`fsdd_tables` gives the same split as two tables (`path`, `digit`, `speaker`) for a
task model with two outputs, digit and speaker (`data.audio_column = "path"`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


@dataclass(frozen=True)
class Recording:
    path: Path
    digit: str
    speaker: str
    index: int


def recordings(root: str | os.PathLike) -> list[Recording]:
    """The FSDD recordings under `root` (the `recordings/` folder), sorted by name.

    Raises:
        FileNotFoundError: no file of the `digit_speaker_index.wav` form under `root`.
    """
    found = []
    for path in sorted(Path(root).glob("*.wav")):
        match = _NAME.match(path.name)
        if match:
            found.append(Recording(path, match[1], match[2], int(match[3])))
    if not found:
        raise FileNotFoundError(f"No FSDD recordings (digit_speaker_index.wav) in {root}")
    return found


def speakers(root: str | os.PathLike) -> list[str]:
    return sorted({r.speaker for r in recordings(root)})


def _is_test(recording: Recording, split: str) -> bool:
    if split == "official":
        return recording.index < 5
    if split.startswith("speaker:"):
        return recording.speaker == split.split(":", 1)[1]
    raise ValueError(f"Unknown FSDD split {split!r}; expected 'official' or 'speaker:NAME'.")


def stage_fsdd(root: str | os.PathLike, out: str | os.PathLike,
               split: str = "official") -> tuple[Path, Path]:
    """Links FSDD recordings into OUT/train/<digit>/ and OUT/test/<digit>/.

    Args:
        root: the `recordings/` folder.
        out: an empty or missing folder.
        split: "official" or "speaker:NAME" (see the module docstring).

    Returns:
        (train folder, test folder).
    """
    out = Path(out)
    items = recordings(root)
    if split.startswith("speaker:") and split[8:] not in {r.speaker for r in items}:
        raise ValueError(f"Unknown speaker in {split!r}; FSDD speakers: "
                         f"{sorted({r.speaker for r in items})}")
    for item in items:
        folder = out / ("test" if _is_test(item, split) else "train") / item.digit
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / item.path.name
        if not link.exists():
            link.symlink_to(item.path.resolve())
    return out / "train", out / "test"


def fsdd_tables(root: str | os.PathLike, split: str = "official"):
    """(train, test) DataFrames of path, digit and speaker for `split`.

    Only the official split can test the speaker task: with "speaker:NAME" the test
    speaker is one the training data never names.
    """
    import pandas as pd

    if split != "official":
        raise ValueError(f"A speaker target needs split 'official' (every speaker trains and "
                         f"tests). Received: split={split!r}")
    rows = {"train": [], "test": []}
    for item in recordings(root):
        rows["test" if _is_test(item, split) else "train"].append(
            {"path": str(item.path.resolve()), "digit": item.digit, "speaker": item.speaker})
    return pd.DataFrame(rows["train"]), pd.DataFrame(rows["test"])

"""Keyword arguments of `tfxfer.fit` -> the nested config overrides of `load_config`.

Every field of `RunConfig` is a keyword, by its own name: `epochs=3` is
`train.epochs`, `backbone="resnet50"` is `model.image.backbone`, `seed=0` is
`data.seed`. The names are read from the config dataclasses, so a field added
there is a keyword at once. A name that only modality sections share (`augment`:
`model.image.augment` and `model.audio.augment`) sets it in each of them, since a run
reads the sections of its data's modality; any other name that two sections share
must be given by its dotted path (`**{"section.key": value}`). A whole section may be
given as a mapping (`train={"epochs": 3}`). Imports no TensorFlow.

Example:
    config_overrides({"epochs": 3, "backbone": "resnet50"})
    # {"train": {"epochs": 3}, "model": {"image": {"backbone": "resnet50"}}}
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any

from tfxfer.config import SECTIONS, RunConfig


def _leaf_paths(obj: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every non-section field under dataclass instance `obj`."""
    paths = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            paths += _leaf_paths(value, f"{prefix}{f.name}.")
        else:
            paths.append(prefix + f.name)
    return paths


@functools.cache
def keyword_paths() -> dict[str, tuple[str, ...]]:
    """Each keyword name -> the dotted config paths it may mean (one, unless shared)."""
    names: dict[str, tuple[str, ...]] = {}
    for path in _leaf_paths(RunConfig()):
        name = path.rsplit(".", 1)[-1]
        names[name] = (*names.get(name, ()), path)
    return names


@functools.cache
def _sections() -> frozenset[str]:
    """Dotted paths of the config's sections ("data", "model", "model.image", ...)."""
    def walk(obj: Any, prefix: str) -> list[str]:
        found = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                found += [prefix + f.name, *walk(value, f"{prefix}{f.name}.")]
        return found
    return frozenset(walk(RunConfig(), ""))


def valid_keywords() -> list[str]:
    """Every name `tfxfer.fit` takes as a keyword, sorted."""
    return sorted(k for k, paths in keyword_paths().items()
                  if len(paths) == 1 or _modality_sections(paths))


def _modality_sections(paths: tuple[str, ...]) -> bool:
    """Whether every one of `paths` is a key of a modality section (`model.image.augment`)."""
    return all(path.split(".")[:2][0] == "model" and path.count(".") == 2
               and path.split(".")[1] in SECTIONS for path in paths)


def _paths_of(key: str) -> tuple[str, ...]:
    """The dotted config paths a keyword sets; ValueError naming it and the valid ones."""
    dotted = key.replace("-", "_")
    if "." in dotted:
        if dotted in _sections() or dotted in {p for ps in keyword_paths().values() for p in ps}:
            return (dotted,)
    elif dotted in _sections():
        return (dotted,)
    paths = keyword_paths().get(dotted, ())
    if len(paths) == 1 or (paths and _modality_sections(paths)):
        return paths
    if len(paths) > 1:
        raise ValueError(f"Config key {key!r} is in several sections; give its dotted path "
                         f"as **{{'{paths[0]}': ...}}. Received: {key}= (one of "
                         f"{', '.join(paths)})")
    close = difflib.get_close_matches(dotted, valid_keywords(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown config key {key!r}.{hint} Valid keys: "
                     f"{', '.join(valid_keywords())} (or a section: "
                     f"{', '.join(sorted(_sections()))})")


def config_overrides(keys: dict[str, Any]) -> dict[str, Any]:
    """Flat keywords -> nested overrides for `tfxfer.config.load_config`.

    Args:
        keys: config field names (or dotted paths, or section names with a mapping)
            and their values.

    Returns:
        A nested dict, e.g. {"train": {"epochs": 3}}.

    Raises:
        ValueError: an unknown or ambiguous key, naming it and the valid keys.
    """
    nested: dict[str, Any] = {}
    for key, value in keys.items():
        for path in _paths_of(key):
            *sections, name = path.split(".")
            tree = nested
            for section in sections:
                tree = tree.setdefault(section, {})
            if isinstance(tree.get(name), dict) and isinstance(value, dict):
                tree[name] = {**tree[name], **value}
            else:
                tree[name] = value
    return nested

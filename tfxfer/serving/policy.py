"""Which versions of a model are served: TF Serving's model_version_policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

POLICIES = ("latest", "all", "specific")


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model are served (TF Serving's model_version_policy).

    Attributes:
        kind: "latest" (the `num_versions` highest), "all", or "specific" (`versions`).
        num_versions: versions served under "latest".
        versions: the versions served under "specific".
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self):
        if self.kind not in POLICIES:
            raise ValueError(f"Unknown version policy {self.kind!r}. Valid policies: "
                             f"{', '.join(POLICIES)}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"num_versions must be >= 1. Received: {self.num_versions}")
        if self.kind == "specific" and not self.versions:
            raise ValueError("The 'specific' policy needs the versions to serve (--versions 1,2).")
        if self.kind != "specific" and self.versions:
            raise ValueError(f"Versions are given only with the 'specific' policy. Received: "
                             f"policy={self.kind!r}, versions={list(self.versions)}")

    def select(self, on_disk: Sequence[int]) -> list[int]:
        """The versions to serve, ascending, out of those on disk."""
        on_disk = sorted(on_disk)
        if self.kind == "latest":
            return on_disk[-self.num_versions:]
        if self.kind == "all":
            return on_disk
        return sorted(set(self.versions) & set(on_disk))

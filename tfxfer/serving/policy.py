"""Which versions of a model are served: TF Serving's model_version_policy.

One `VersionPolicy` for `tfxfer serve` (which versions it loads) and for
`tfxfer serving-config` (the `model_version_policy` it writes), with the command
line flags both commands share. Importing it does not load TensorFlow.
"""

from __future__ import annotations

import argparse
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
        object.__setattr__(self, "versions", tuple(self.versions))
        if self.kind not in POLICIES:
            raise ValueError(f"Unknown version policy {self.kind!r}. Valid policies: "
                             f"{', '.join(POLICIES)}")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError(f"num_versions must be >= 1. Received: {self.num_versions}")
        if self.kind == "specific" and not self.versions:
            raise ValueError("The 'specific' policy needs the versions to serve "
                             "(e.g. --versions 1,2).")
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

    def missing(self, on_disk: Sequence[int]) -> list[int]:
        """The versions a "specific" policy names that are not on disk."""
        return sorted(set(self.versions) - set(on_disk))

    def to_proto(self):
        """As `FileSystemStoragePathSourceConfig.ServableVersionPolicy` (models.config)."""
        from tensorflow_serving.config import file_system_storage_path_source_pb2 as source_pb2

        proto = source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy()
        if self.kind == "latest":
            proto.latest.num_versions = self.num_versions
        elif self.kind == "all":
            proto.all.SetInParent()
        else:
            proto.specific.versions.extend(sorted(set(self.versions)))
        return proto

    @classmethod
    def from_proto(cls, proto) -> VersionPolicy:
        """From a models.config `model_version_policy` (unset: the latest version)."""
        choice = proto.WhichOneof("policy_choice")
        if choice == "all":
            return cls("all")
        if choice == "specific":
            return cls("specific", versions=tuple(proto.specific.versions))
        if choice == "latest" and proto.latest.num_versions:
            return cls("latest", proto.latest.num_versions)
        return cls()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> VersionPolicy:
        """The policy asked for by the flags of `add_policy_arguments`."""
        return cls(args.policy, args.num_versions, tuple(args.versions))


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _versions(text: str) -> tuple[int, ...]:
    try:
        versions = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected versions like 1,2, got {text!r}") from err
    if any(v < 0 for v in versions):
        raise argparse.ArgumentTypeError(f"versions are non-negative integers, got {text!r}")
    return versions


def add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    """--policy, --num-versions and --versions (read back with `VersionPolicy.from_args`)."""
    parser.add_argument("--policy", choices=POLICIES, default="latest",
                        help="versions to serve (TF Serving's model_version_policy; "
                             "default latest)")
    parser.add_argument("--num-versions", type=positive_int, default=1,
                        help="with --policy latest: how many of the newest versions (default 1)")
    parser.add_argument("--versions", type=_versions, default=(),
                        help="with --policy specific: the versions, e.g. 1,2")

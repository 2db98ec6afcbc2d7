"""The registry convention shared by backbones and text encoders.

A registry maps names to frozen spec dataclasses (each has a `name`):

    names     lower-case snake_case ("mobilenet_v2", "glove_6b_50d")
    matching  ignores case, "_" and "-": "MobileNetV2", "mobilenet-v2" and
              "glove-6b-50d" find the entries above
    register  `register_<kind>(spec)`: one call adds an entry
    lookup    `get_<kind>(name)`, `list_<kind>s()`; an unknown name is a ValueError
              that lists the valid names

Example:
    BACKBONES = Registry("backbone")
    BACKBONES.register(spec)
    BACKBONES.get("MobileNet-V2")
"""

from __future__ import annotations

import re
from typing import Generic, Protocol, TypeVar

_NAME = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


class _Named(Protocol):
    name: str


S = TypeVar("S", bound=_Named)


def registry_key(name: str) -> str:
    """The matching key of a name: lower case, without "_" and "-"."""
    return name.lower().replace("_", "").replace("-", "")


class Registry(Generic[S]):
    """Specs by name, in registration order.

    Args:
        kind: what the entries are ("backbone", "text encoder"), for messages.
        hint: appended to the unknown-name error, e.g. other accepted forms.
    """

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._specs: dict[str, S] = {}

    def register(self, spec: S) -> S:
        """Adds `spec`; its name must be snake_case and not match a registered one."""
        if not _NAME.fullmatch(spec.name):
            raise ValueError(
                f"A {self.kind} name must be lower-case snake_case (e.g. 'mobilenet_v2'). "
                f"Received: {spec.name!r}"
            )
        key = registry_key(spec.name)
        if key in self._specs:
            raise ValueError(
                f"A {self.kind} named {self._specs[key].name!r} is already registered; "
                f"{spec.name!r} would match it."
            )
        self._specs[key] = spec
        return spec

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and registry_key(name) in self._specs

    def get(self, name: str) -> S:
        """The spec matching `name`; unknown names list the valid ones."""
        spec = self._specs.get(registry_key(name))
        if spec is None:
            valid = ", ".join(s.name for s in self._specs.values())
            raise ValueError(
                f"Unknown {self.kind} {name!r}. Valid {self.kind}s: {valid}"
                + (f"; {self.hint}" if self.hint else "")
            )
        return spec

    def list(self) -> list[S]:
        """All specs, in registration order."""
        return list(self._specs.values())

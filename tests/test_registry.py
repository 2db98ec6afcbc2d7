"""One registry convention for backbones and text encoders (tfxfer.utils.registry)."""

from dataclasses import dataclass, replace

import pytest

from tfxfer.image import backbones
from tfxfer.text import encoders
from tfxfer.utils.registry import Registry

# (registry, register function, get function, list function)
REGISTRIES = {
    "backbones": (backbones.BACKBONES, backbones.register_backbone, backbones.get_backbone,
                  backbones.list_backbones),
    "encoders": (encoders.ENCODERS, encoders.register_encoder, encoders.get_encoder,
                 encoders.list_encoders),
}


@pytest.mark.parametrize("kind", REGISTRIES)
def test_names_are_snake_case_and_match_in_any_spelling(kind):
    registry, _, get, list_specs = REGISTRIES[kind]
    specs = list_specs()
    assert specs and specs == registry.list()
    for spec in specs:
        assert spec.name == spec.name.lower() and "-" not in spec.name
        kebab, camel = spec.name.replace("_", "-"), spec.name.title().replace("_", "")
        assert get(kebab) is get(camel) is get(spec.name) is spec


@pytest.mark.parametrize("kind", REGISTRIES)
def test_register_rejects_names_that_match_an_entry_or_break_the_convention(kind):
    registry, register, _, _ = REGISTRIES[kind]
    first = registry.list()[0]
    with pytest.raises(ValueError, match="already registered"):
        register(replace(first, name=first.name.replace("_", "")))
    with pytest.raises(ValueError, match="snake_case"):
        register(replace(first, name="Not-Snake-Case"))


@pytest.mark.parametrize("kind", REGISTRIES)
def test_unknown_names_list_the_valid_ones(kind):
    registry, _, get, _ = REGISTRIES[kind]
    valid = ", ".join(spec.name for spec in registry.list())
    with pytest.raises(ValueError, match=f"Unknown {registry.kind} 'nope'.*{valid}"):
        get("nope")


def test_old_names_users_rely_on_still_resolve():
    assert backbones.get_backbone("mobilenet_v2").name == "mobilenet_v2"
    assert encoders.get_encoder("glove-6b-50d").name == "glove_6b_50d"
    assert encoders.get_encoder("glove-6b-50d-full").name == "glove_6b_50d_full"


def test_a_new_registry_adds_and_lists_in_order():
    @dataclass(frozen=True)
    class Spec:
        name: str

    registry = Registry("widget")
    a, b = registry.register(Spec("big_one")), registry.register(Spec("small"))
    assert registry.list() == [a, b] and registry.get("Big-One") is a and "SMALL" in registry

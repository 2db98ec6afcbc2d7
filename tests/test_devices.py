"""The dtype policy: which CPUs are told that mixed precision will be slow."""

import logging

import keras
import pytest

from tfxfer.runtime import devices


@pytest.mark.parametrize("flags, has", [("fpu avx2 avx512f avx512_bf16", True),
                                        ("fpu avx2 amx_bf16 amx_tile", True),
                                        ("fpu avx2 avx512f", False)])
def test_bfloat16_cpus_are_read_from_cpuinfo_flags(tmp_path, flags, has):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert devices.cpu_has_bfloat16(str(cpuinfo)) is has
    assert devices.cpu_has_bfloat16(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("has, warned", [(True, False), (False, True)])
def test_mixed_precision_on_cpu_warns_only_without_bfloat16(monkeypatch, caplog, has, warned):
    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: has)
    try:
        with caplog.at_level(logging.WARNING, logger=devices.__name__):
            assert devices.set_precision(True) == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert ("without bfloat16 instructions" in caplog.text) is warned
    finally:
        assert devices.set_precision(False) == "float32"


@pytest.mark.parametrize("has, policy", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_turns_mixed_precision_on_only_where_it_pays(monkeypatch, has, policy):
    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: has)
    try:
        assert devices.set_precision("auto") == policy
    finally:
        devices.set_precision(False)


def test_mixed_precision_accepts_true_false_or_auto_only():
    from tfxfer.config import load_config

    assert load_config(None, {"train": {"mixed_precision": "auto"}}).train.mixed_precision == "auto"
    with pytest.raises(ValueError, match="train.mixed_precision"):
        load_config(None, {"train": {"mixed_precision": "fast"}})

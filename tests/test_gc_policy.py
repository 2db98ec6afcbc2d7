"""The collector's policy in training processes: the long-lived heap out of the scans."""

import gc
import subprocess
import sys

from tfxfer.gc_policy import long_lived_frozen


def test_a_phase_freezes_the_heap_and_gives_it_back():
    assert gc.get_freeze_count() == 0
    with long_lived_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_someone_elses_freeze_is_left_alone():
    gc.freeze()
    try:
        count = gc.get_freeze_count()
        with long_lived_frozen():
            pass
        assert gc.get_freeze_count() == count
    finally:
        gc.unfreeze()


def test_entry_points_freeze_the_heap_at_exit():
    code = ("import atexit, gc\n"
            "atexit.register(lambda: print('frozen at exit', gc.get_freeze_count() > 0))\n"
            "from tfxfer.gc_policy import skip_final_collection\n"
            "skip_final_collection(); skip_final_collection()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "frozen at exit True"

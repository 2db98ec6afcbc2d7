"""TensorBoard logs of both training phases under the run directory.

One callback serves every phase: phases continue the epoch count, so the
curves of phase 2 follow those of phase 1 and the boundary shows as a change
of slope at the phase's first epoch (the learning rate is logged too).

    tensorboard --logdir RUN_DIR/tensorboard
"""

from __future__ import annotations

from pathlib import Path

import keras

TENSORBOARD_DIR = "tensorboard"


def tensorboard_callbacks(
    run_dir: str | Path, enabled: bool = True
) -> list[keras.callbacks.Callback]:
    """A TensorBoard callback writing to RUN_DIR/tensorboard, or none when disabled.

    Args:
        run_dir: the run directory.
        enabled: `train.tensorboard` of the config.

    Returns:
        A list to pass as `fit_phases(..., callbacks=...)`.
    """
    if not enabled:
        return []
    return [keras.callbacks.TensorBoard(
        log_dir=str(Path(run_dir, TENSORBOARD_DIR)), write_graph=False, profile_batch=0,
    )]

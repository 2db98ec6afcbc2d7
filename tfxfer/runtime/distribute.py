"""Multi-worker training: TF_CONFIG, MultiWorkerMirroredStrategy, who writes what.

A multi-worker job is N copies of the same `tfxfer train` command, each with a
`TF_CONFIG` naming the cluster and its own task (what Kubeflow's TFJob, Vertex AI
or `tfxfer launch` set up):

    {"cluster": {"worker": ["host0:port", "host1:port"]},
     "task": {"type": "worker", "index": 0}}

Every worker builds the model under `tf.distribute.MultiWorkerMirroredStrategy`
and runs the same `fit` calls; gradients are all-reduced after every step.
`data.batch_size` is the *global* batch: each of the R replicas (one per CPU
worker) gets batch_size / R examples per step, so a run on 1 or N workers with the
same batch_size takes the same number of steps with the same effective batch.

Input sharding is explicit: the pipelines hold file lists or in-memory tensors,
not a set of files to split, so the auto-shard policy is DATA (every worker reads
the same shuffled order and keeps its share of each global batch); FILE sharding
would need at least as many input files as workers.

Only the chief (task "chief", or worker 0 when there is none) writes the run
directory, the report and the model; the other workers write to a temporary
directory that is removed when they finish.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from tfxfer.utils import keras_compat

logger = logging.getLogger(__name__)

TF_CONFIG = "TF_CONFIG"


def read_tf_config() -> dict:
    """The parsed `TF_CONFIG` environment variable ({} when unset)."""
    text = os.environ.get(TF_CONFIG, "")
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}). Received: {text!r}") from err
    if not isinstance(config, dict) or "cluster" not in config or "task" not in config:
        raise ValueError(f"TF_CONFIG must hold 'cluster' and 'task'. Received: {text!r}")
    return config


def cluster_size(config: dict) -> int:
    """Number of training tasks (chief and workers) in a TF_CONFIG."""
    cluster = config.get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def wants_multi_worker(setting: str) -> bool:
    """True for "multi_worker", and for "auto" when TF_CONFIG names several tasks."""
    if setting == "multi_worker":
        return True
    return setting == "auto" and cluster_size(read_tf_config()) > 1


def multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """MultiWorkerMirroredStrategy from TF_CONFIG, with ring all-reduce (works on CPU).

    It must be created before TensorFlow runs any op in the process.
    """
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    keras_compat.multi_worker_patches()  # two Keras 3.15 multi-worker bugs
    config = read_tf_config()
    logger.info("MultiWorkerMirroredStrategy: %d replicas, task %s", strategy.num_replicas_in_sync,
                config.get("task", {"type": "worker", "index": 0}))
    return strategy


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _task_name(strategy: tf.distribute.Strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return "local"
    return f"{resolver.task_type}{resolver.task_id}"


def output_dir(run_dir: Path, strategy: tf.distribute.Strategy) -> Path:
    """Where this process writes: `run_dir` on the chief, a temporary directory elsewhere.

    The temporary directory is named after the run and the task, so a worker
    restarted after a kill (which removes nothing) first removes what its killed
    predecessor left; `remove_output_dir` removes it at the end.
    """
    if is_chief(strategy):
        return run_dir
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    tmp = Path(tempfile.gettempdir(), f"tfxfer-worker-{digest}-{_task_name(strategy)}")
    if tmp.exists():
        logger.info("Removing %s left by a previous attempt of this worker", tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    logger.info("Not the chief: writing to temporary %s (removed at the end)", tmp)
    return tmp


def remove_output_dir(out: Path, run_dir: Path) -> None:
    """Removes a non-chief's temporary output directory (never the run directory)."""
    if Path(out) != Path(run_dir):
        shutil.rmtree(out, ignore_errors=True)


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Waits until every worker gets here (nothing to wait for outside multi-worker).

    Run at the end of a job, it keeps the other workers alive while the chief
    evaluates and writes, so the chief never sees them vanish ("tasks are unhealthy").
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


def input_options(deterministic: bool) -> tf.data.Options:
    """tf.data options of the training and validation pipelines.

    The auto-shard policy is set explicitly (see the module docstring), and with
    `deterministic` the element order never depends on thread timing.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA
    )
    if deterministic:
        options.deterministic = True
    return options


def with_options(ds: tf.data.Dataset | None, options: tf.data.Options) -> tf.data.Dataset | None:
    return None if ds is None else ds.with_options(options)

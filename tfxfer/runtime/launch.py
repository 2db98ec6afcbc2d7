"""A local multi-worker launcher: N `tfxfer` processes on 127.0.0.1, one TF_CONFIG each.

    tfxfer launch --workers 2 -- train --data flowers/ --out runs/mw --distribute multi_worker

starts two worker processes of the same command. Each gets a free loopback port
and a TF_CONFIG naming all of them and its own index (worker 0 is the chief);
their output is streamed line by line with a `[worker i]` prefix. When one worker
fails, the others are stopped and the job fails; with `--restarts K` the whole
job is started again (on fresh ports) up to K times, with `--resume RUN_DIR`
added so it continues from the last completed epoch, as a cluster scheduler that
restarts a failed TFJob would.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tfxfer.runtime.distribute import TF_CONFIG

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
STOP_GRACE_SECONDS = 10.0


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: Sequence[int], index: int) -> dict:
    """The TF_CONFIG of worker `index` of a loopback cluster on `ports`."""
    return {"cluster": {"worker": [f"{HOST}:{port}" for port in ports]},
            "task": {"type": "worker", "index": index}}


@dataclass
class Worker:
    index: int
    process: subprocess.Popen
    reader: threading.Thread


def _stream(worker_index: int, pipe, sink: TextIO, lock: threading.Lock) -> None:
    for line in pipe:
        with lock:
            sink.write(f"[worker {worker_index}] {line}")
            sink.flush()


def _start(command: Sequence[str], workers: int, sink: TextIO) -> list[Worker]:
    ports, lock, started = free_ports(workers), threading.Lock(), []
    for index in range(workers):
        env = {**os.environ, TF_CONFIG: json.dumps(tf_config(ports, index))}
        process = subprocess.Popen(
            [sys.executable, "-m", "tfxfer.cli", *command], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        reader = threading.Thread(target=_stream, args=(index, process.stdout, sink, lock),
                                  daemon=True)
        reader.start()
        started.append(Worker(index, process, reader))
        logger.info("worker %d: pid %d, %s:%d", index, process.pid, HOST, ports[index])
    return started


def _stop(workers: Sequence[Worker]) -> None:
    """Terminates the workers still running; kills those that do not stop in time."""
    running = [w for w in workers if w.process.poll() is None]
    for w in running:
        w.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for w in running:
        try:
            w.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.process.kill()
            w.process.wait()
    for w in workers:
        w.reader.join(timeout=5)


def _wait(workers: Sequence[Worker], deadline: float | None) -> int:
    """0 when all workers succeed; the first failure's exit code otherwise."""
    while True:
        codes = [w.process.poll() for w in workers]
        failed = [(w, c) for w, c in zip(workers, codes) if c not in (None, 0)]
        if failed:
            worker, code = failed[0]
            logger.error("worker %d exited with code %d; stopping the others", worker.index, code)
            return code
        if all(c == 0 for c in codes):
            return 0
        if deadline is not None and time.monotonic() > deadline:
            logger.error("The job did not finish within its time limit; stopping it")
            return 124
        time.sleep(0.2)


def _out_dir(command: Sequence[str]) -> str | None:
    for i, arg in enumerate(command):
        if arg == "--out" and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith("--out="):
            return arg.split("=", 1)[1]
    return None


def _resume_command(command: Sequence[str]) -> list[str]:
    """The command continuing the run after a restart (unchanged before it has a config)."""
    out = _out_dir(command)
    if "--resume" in command or not Path(out, "config.json").is_file():
        return list(command)
    return [*command, "--resume", out]


def _validate(command: Sequence[str], workers: int, restarts: int) -> None:
    if workers < 1:
        raise ValueError(f"--workers must be >= 1. Received: {workers}")
    if not command:
        raise ValueError("No command to launch; give one after --, e.g. -- train --data DIR")
    if restarts and (command[0] != "train" or _out_dir(command) is None):
        raise ValueError(
            "--restarts needs a `train` command with --out RUN_DIR, so that restarted "
            f"workers can resume it. Received: {' '.join(command)}"
        )


def launch(
    command: Sequence[str], workers: int, restarts: int = 0, timeout: float | None = None,
    sink: TextIO | None = None,
) -> int:
    """Runs `tfxfer <command>` as a `workers`-process job on 127.0.0.1.

    Args:
        command: the tfxfer command line, e.g. ["train", "--data", "d", "--out", "r"].
        workers: number of worker processes.
        restarts: how many times a failed job is started again with `--resume`.
        timeout: seconds the whole job may take over all attempts (None: no limit).
        sink: where the prefixed worker output goes (default stdout).

    Returns:
        0 when every worker of an attempt succeeded; else the failing exit code.
    """
    _validate(command, workers, restarts)
    sink = sink or sys.stdout
    deadline = None if timeout is None else time.monotonic() + timeout
    command = list(command)
    for attempt in range(restarts + 1):
        if attempt:
            command = _resume_command(command)
            logger.info("Restart %d of %d: %s", attempt, restarts, " ".join(command))
        started = _start(command, workers, sink)
        try:
            code = _wait(started, deadline)
        finally:
            _stop(started)
        if code in (0, 124):
            return code
    return code

"""The `tfxfer serve` command: flags to ServerConfig, and a real process stopped by SIGTERM."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading

from server_models import cleanup_built, http_request, publish

from tfxfer import cli
from tfxfer.serving.policy import VersionPolicy
from tfxfer.serving.server.commands import config_from_args


def test_serve_flags_make_the_config(tmp_path):
    args = cli.build_parser().parse_args([
        "serve", str(tmp_path), "--rest-port", "0", "--grpc-port", "9000", "--policy",
        "specific", "--versions", "1,3", "--version-label", "flowers:stable=3",
        "--max-request-bytes", "1000", "--poll-seconds", "0.5", "--no-warmup"])
    config = config_from_args(args)
    assert (config.host, config.rest_port, config.grpc_port) == ("127.0.0.1", 0, 9000)
    assert config.policy == VersionPolicy("specific", versions=(1, 3))
    assert config.version_labels == {"flowers": {"stable": 3}}
    assert (config.max_request_bytes, config.poll_seconds, config.warmup) == (1000, 0.5, False)
    defaults = config_from_args(cli.build_parser().parse_args(["serve", str(tmp_path)]))
    assert (defaults.host, defaults.rest_port, defaults.grpc_port) == ("127.0.0.1", 8501, 8500)
    assert defaults.policy == VersionPolicy()


def test_serve_command_reports_a_taken_port(tmp_path, caplog):
    publish(tmp_path / "tiny", 1, scale=1.0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli.main(["serve", str(tmp_path), "--rest-port", str(port), "--grpc-port", "0"])
    assert code == 2
    assert "could not start" in caplog.text and "Address already in use" in caplog.text


def test_serve_command_serves_until_sigterm(tmp_path):
    publish(tmp_path / "tiny", 1, scale=1.0)
    process = subprocess.Popen(
        [sys.executable, "-m", "tfxfer.cli", "serve", str(tmp_path), "--rest-port", "0",
         "--grpc-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    watchdog = threading.Timer(120, process.kill)  # never leave a server behind
    watchdog.start()
    try:
        line = process.stdout.readline()
        match = re.search(r"REST http://127\.0\.0\.1:(\d+) gRPC 127\.0\.0\.1:(\d+) models tiny",
                          line)
        assert match, line
        status, body = http_request(int(match.group(1)), "POST", "/v1/models/tiny:predict",
                                    {"instances": ["abc"]})
        assert status == 200 and body["predictions"][0]["score"] == 3.0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert "stopping" in process.stdout.read()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        cleanup_built()

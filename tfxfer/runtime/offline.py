"""Downloads that fail fast and say what to pass instead.

Without network, TFDS retries for minutes and Keras and TF-Hub end in long
tracebacks. Every download tfxfer starts (a TFDS dataset, ImageNet weights, a
TF-Hub module) runs inside `fetching`, which turns a connection error into one
`DownloadError` naming what could not be fetched and the offline alternative.
A TFDS dataset that is not prepared yet is preceded by `check_reachable`: one
connection to its download host, with a short timeout, before TFDS's retries.
"""

from __future__ import annotations

import contextlib
import socket
import urllib.parse
from collections.abc import Iterable, Iterator

# Class names of the errors a refused, unreachable or unresolvable connection raises,
# across urllib, requests/urllib3 (whose errors do not derive from ConnectionError)
# and the socket module.
_NETWORK_ERRORS = {"URLError", "ConnectionError", "NewConnectionError", "MaxRetryError",
                   "ProtocolError", "ReadTimeout", "ConnectTimeout", "RemoteDisconnected"}

PROBE_TIMEOUT = 5.0


class DownloadError(ValueError):
    """Something had to be downloaded and the network refused; the message says what to pass."""


def _chain(err: BaseException | None) -> Iterator[BaseException]:
    """`err` and the errors it was raised from (or during), outermost first."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def _is_network(err: BaseException) -> bool:
    return (isinstance(err, (ConnectionError, socket.gaierror, socket.timeout))
            or type(err).__name__ in _NETWORK_ERRORS)


def is_network_error(err: BaseException) -> bool:
    """Whether `err`, or an error it was raised from, is a failed network connection."""
    return any(_is_network(e) for e in _chain(err))


def _reason(err: BaseException) -> str:
    """The innermost network error's text (e.g. "[Errno 111] Connection refused")."""
    inner = [e for e in _chain(err) if _is_network(e)][-1]
    return f"{type(inner).__name__}: {inner}"


@contextlib.contextmanager
def fetching(what: str, instead: str) -> Iterator[None]:
    """Runs a download; a connection error becomes one DownloadError.

    Args:
        what: what is being downloaded ("ImageNet weights of mobilenet_v2").
        instead: what to pass when offline ("--weights PATH or --weights none").

    Raises:
        DownloadError: the download failed on a network error.
    """
    try:
        yield
    except Exception as err:
        if not is_network_error(err):
            raise
        raise DownloadError(f"Could not download {what} ({_reason(err)}). Without network, "
                            f"pass {instead}.") from err


def check_reachable(urls: Iterable[str], timeout: float = PROBE_TIMEOUT) -> None:
    """Opens one connection to the host of the first URL; raises on a connection error.

    Raises:
        OSError: the host refused, is unreachable or cannot be resolved.
    """
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            continue
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
        return

"""Fair admission: one client flooding the server cannot starve the others.

Each API (REST, gRPC) runs its requests on a pool of worker threads. Queued
first in, first out, a client sending 1,000 requests at once would put them all
ahead of everyone else. Instead, as nginx's `limit_conn` and envoy's circuit
breakers do:

- a client is its peer IP address (127.0.0.1 and 127.0.0.2 are two clients;
  an IPv4-mapped IPv6 address is its IPv4 address);
- at most `max_client_requests` requests of one client are in progress at once
  (body being read, waiting for a worker, or running); one more is refused at
  once with RESOURCE_EXHAUSTED (HTTP 429) instead of queueing;
- at most `max_queued_requests` requests of all clients wait for a worker; one
  more is refused with UNAVAILABLE (HTTP 503), as TF Serving answers when its
  batching queue is full;
- a free worker goes to the waiting clients in turn (round robin, one request
  each), so a request waits for at most one request of every other waiting
  client, plus those already running.

Everything here runs on the server's event loop thread, so it needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote

from tfxfer.serving.server.errors import Code, ServingError

T = TypeVar("T")

# nginx and envoy leave the per-client bound to the operator; 64 keeps
# `bench/load_test.py --concurrency 64` from one address within it.
DEFAULT_MAX_CLIENT_REQUESTS = 64
# envoy's default max_pending_requests.
DEFAULT_MAX_QUEUED_REQUESTS = 1024


@dataclass(frozen=True)
class AdmissionConfig:
    """Bounds on the requests clients may have in progress (0: no bound).

    Attributes:
        max_client_requests: requests of one client (peer IP address) in progress at
            once, per API; more get RESOURCE_EXHAUSTED / HTTP 429.
        max_queued_requests: requests of all clients waiting for a worker, per API; more
            get UNAVAILABLE / HTTP 503.
    """

    max_client_requests: int = DEFAULT_MAX_CLIENT_REQUESTS
    max_queued_requests: int = DEFAULT_MAX_QUEUED_REQUESTS

    def __post_init__(self):
        for name in ("max_client_requests", "max_queued_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0 (0: no limit). "
                                 f"Received: {value!r}")


def client_identity(peer: str | None) -> str:
    """The client a peer address belongs to: its IP address.

    Args:
        peer: aiohttp's `request.remote` ("127.0.0.1", "::1") or grpcio's
            `context.peer()` ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000", "unix:/path").

    Returns:
        The IP address (an IPv4-mapped IPv6 address as IPv4), or the peer as given
        when it is no IP address, or "unknown".
    """
    if not peer:
        return "unknown"
    scheme, sep, rest = peer.partition(":")
    host = peer
    if sep and scheme in ("ipv4", "ipv6"):
        host = unquote(rest).rsplit(":", 1)[0].strip("[]")
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _too_many(client: str, limit: int) -> ServingError:
    return ServingError(
        Code.RESOURCE_EXHAUSTED,
        f"Too many requests from {client}: {limit} are already in progress, the most one "
        f"client may have (tfxfer serve --max-client-requests). Retry after an answer.")


def _overloaded(queued: int, limit: int) -> ServingError:
    return ServingError(
        Code.UNAVAILABLE,
        f"Server overloaded: {queued} requests are waiting for a worker, the most it queues "
        f"(tfxfer serve --max-queued-requests). Retry later.")


class FairScheduler:
    """Admits requests and runs them on a thread pool, taking clients in turn.

    Args:
        executor: the pool the work runs on.
        workers: how many requests run at once (the pool's thread count, so that
            the pool itself never queues).
        config: the bounds.
    """

    def __init__(self, executor: Executor, workers: int, config: AdmissionConfig):
        self._executor = executor
        self._free = workers
        self.config = config
        self._in_progress: Counter[str] = Counter()
        self._waiting: OrderedDict[str, deque[asyncio.Future]] = OrderedDict()
        self.queued = 0

    def in_progress(self, client: str) -> int:
        """The client's requests admitted and not yet answered."""
        return self._in_progress[client]

    @contextlib.contextmanager
    def admitted(self, client: str) -> Iterator[None]:
        """Holds one of the client's places for the whole request.

        Raises:
            ServingError: RESOURCE_EXHAUSTED when the client has all its places.
        """
        limit = self.config.max_client_requests
        if limit and self._in_progress[client] >= limit:
            raise _too_many(client, limit)
        self._in_progress[client] += 1
        try:
            yield
        finally:
            self._in_progress[client] -= 1
            if not self._in_progress[client]:
                del self._in_progress[client]

    async def run(self, client: str, work: Callable[[], T],
                  abandoned: Callable[[], bool] | None = None) -> T:
        """`work()` on a worker thread, once it is the client's turn.

        Args:
            abandoned: asked when the turn comes; True (the client has gone) skips
                the work and passes the turn on.

        Raises:
            ServingError: UNAVAILABLE when `max_queued_requests` already wait.
            ConnectionResetError: `abandoned()` said so.
        """
        await self._turn(client)
        if abandoned is not None and abandoned():
            self._release()
            raise ConnectionResetError(f"{client} disconnected while waiting for its turn")
        try:
            future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        # A request cancelled meanwhile (the client left) keeps its worker until `work`
        # returns: the thread cannot be stopped, and the next request must not queue.
        return await asyncio.shield(future)

    async def submit(self, client: str, work: Callable[[], T]) -> T:
        """`run`, holding one of the client's places (see `admitted`) meanwhile."""
        with self.admitted(client):
            return await self.run(client, work)

    async def _turn(self, client: str) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        limit = self.config.max_queued_requests
        if limit and self.queued >= limit:
            raise _overloaded(self.queued, limit)
        turn = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(turn)
        self.queued += 1
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the turn came as the request was cancelled: pass it on
            else:
                self._forget(client, turn)
            raise

    def _forget(self, client: str, turn: asyncio.Future) -> None:
        queue = self._waiting.get(client)
        if queue is not None and turn in queue:
            queue.remove(turn)
            self.queued -= 1
            if not queue:
                del self._waiting[client]

    def _release(self) -> None:
        """A worker is free: it goes to the first waiting client, who moves to the back."""
        while self._waiting:
            client, queue = next(iter(self._waiting.items()))
            turn = queue.popleft()
            self.queued -= 1
            if queue:
                self._waiting.move_to_end(client)
            else:
                del self._waiting[client]
            if not turn.cancelled():
                turn.set_result(None)
                return
        self._free += 1

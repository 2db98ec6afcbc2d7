"""The fair scheduler of `tfxfer serve` alone: turns, refusals, cancellation, identities, bounds.

Each test runs the scheduler on an asyncio loop with a one-thread pool whose
work waits on a gate: every request is queued before the gate opens, so the
order in which they run is fixed by the scheduler alone, not by timing.
(Over loopback: tests/test_server_fairness.py.)
"""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tfxfer.serving.server.admission import AdmissionConfig, FairScheduler, client_identity
from tfxfer.serving.server.errors import Code, ServingError


async def _flood_then_one(scheduler: FairScheduler, flood: dict[str, int], late: str,
                          gate: threading.Event, order: list[str]) -> None:
    """Queues every client's flood, then one request of `late`; opens the gate."""
    def work(name):
        order.append(name)
        assert gate.wait(30)

    tasks = [asyncio.create_task(scheduler.submit(client, lambda n=f"{client}{i}": work(n)))
             for client, count in flood.items() for i in range(count)]
    await asyncio.sleep(0)  # every task has started: one runs, the rest wait
    tasks.append(asyncio.create_task(scheduler.submit(late, lambda: work(f"{late}0"))))
    await asyncio.sleep(0)
    assert scheduler.queued == sum(flood.values())
    gate.set()
    await asyncio.gather(*tasks)


def test_a_flooding_client_cannot_starve_another():
    order: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        scheduler = FairScheduler(pool, 1, AdmissionConfig(max_client_requests=0))
        asyncio.run(_flood_then_one(scheduler, {"a": 8}, "b", threading.Event(), order))
    # a0 held the worker; a1 waited first, then it is b's turn. First come, first
    # served would run b last (index 8).
    assert order == ["a0", "a1", "b0", "a2", "a3", "a4", "a5", "a6", "a7"]


def test_waiting_clients_take_turns():
    order: list[str] = []
    with ThreadPoolExecutor(1) as pool:
        scheduler = FairScheduler(pool, 1, AdmissionConfig(max_client_requests=0))
        asyncio.run(_flood_then_one(scheduler, {"a": 4, "b": 3}, "c", threading.Event(), order))
    assert order == ["a0", "a1", "b0", "c0", "a2", "b1", "a3", "b2"]


def _refusal(config: AdmissionConfig, clients: list[str]) -> ServingError:
    """The error of the first of `clients`' requests refused while a gate holds the worker."""
    async def main():
        gate = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            scheduler = FairScheduler(pool, 1, config)
            tasks = [asyncio.create_task(scheduler.submit(c, lambda: gate.wait(30)))
                     for c in clients]
            await asyncio.sleep(0)
            refused = [t.exception() for t in tasks if t.done()]
            gate.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert (scheduler.queued, scheduler.in_progress("a")) == (0, 0)
            return refused

    refused = asyncio.run(main())
    assert len(refused) == 1, refused
    return refused[0]


def test_a_client_over_its_bound_is_refused_at_once():
    error = _refusal(AdmissionConfig(max_client_requests=3), ["a", "a", "a", "b", "a"])
    assert error.code == Code.RESOURCE_EXHAUSTED and error.http_status == 429
    assert "Too many requests from a: 3" in error.message
    assert "--max-client-requests" in error.message


def test_a_full_queue_is_refused_with_unavailable():
    error = _refusal(AdmissionConfig(max_client_requests=0, max_queued_requests=2),
                     ["a", "b", "c", "d"])  # one runs, two wait, the fourth is refused
    assert error.code == Code.UNAVAILABLE and error.http_status == 503
    assert "--max-queued-requests" in error.message


def test_a_cancelled_request_gives_up_its_place_and_turn():
    async def main():
        gate, order = threading.Event(), []
        with ThreadPoolExecutor(1) as pool:
            scheduler = FairScheduler(pool, 1, AdmissionConfig(max_client_requests=2))
            first = asyncio.create_task(scheduler.submit("a", lambda: gate.wait(30)))
            gone = asyncio.create_task(scheduler.submit("a", lambda: order.append("gone")))
            await asyncio.sleep(0)
            gone.cancel()
            await asyncio.gather(gone, return_exceptions=True)
            assert (scheduler.queued, scheduler.in_progress("a")) == (0, 1)
            # Its place is free again: a second request of "a" is admitted and runs.
            second = asyncio.create_task(scheduler.submit("a", lambda: order.append("next")))
            await asyncio.sleep(0)
            gate.set()
            await asyncio.gather(first, second)
            return order

    assert asyncio.run(main()) == ["next"]


@pytest.mark.parametrize("peer,client", [
    ("127.0.0.1", "127.0.0.1"),
    ("ipv4:127.0.0.2:5000", "127.0.0.2"),
    ("ipv6:[::1]:5000", "::1"),
    ("ipv6:%5B::1%5D:5000", "::1"),
    ("::ffff:10.0.0.7", "10.0.0.7"),
    ("ipv6:[::ffff:10.0.0.7]:80", "10.0.0.7"),
    ("unix:/tmp/socket", "unix:/tmp/socket"),
    (None, "unknown"),
])
def test_client_identity_is_the_ip_address(peer, client):
    assert client_identity(peer) == client


@pytest.mark.parametrize("field,value", [("max_client_requests", -1),
                                         ("max_queued_requests", 2.5),
                                         ("max_client_requests", True)])
def test_bounds_are_validated(field, value):
    with pytest.raises(ValueError, match=rf"{field} must be an integer >= 0.*Received: {value}"):
        AdmissionConfig(**{field: value})


def test_a_request_whose_client_left_while_waiting_is_skipped():
    async def main():
        gate, order = threading.Event(), []
        with ThreadPoolExecutor(1) as pool:
            scheduler = FairScheduler(pool, 1, AdmissionConfig())
            first = asyncio.create_task(scheduler.submit("a", lambda: gate.wait(30)))
            await asyncio.sleep(0)
            left = asyncio.create_task(scheduler.run("b", lambda: order.append("left"),
                                                     abandoned=lambda: True))
            stays = asyncio.create_task(scheduler.run("c", lambda: order.append("stays"),
                                                      abandoned=lambda: False))
            await asyncio.sleep(0)
            gate.set()
            await first
            with pytest.raises(ConnectionResetError, match="b disconnected while waiting"):
                await left
            await stays
            return order, scheduler.queued

    assert asyncio.run(main()) == (["stays"], 0)

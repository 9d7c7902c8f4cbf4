"""The service lock: re-entrant, given up completely while a function runs, granted in arrival order."""

from __future__ import annotations

import threading
import time

from iot_dr_local.locking import ServiceLock


def _queued(lock: ServiceLock, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(lock._waiters) < count:
        assert time.monotonic() < deadline, "waiters did not queue"
        time.sleep(0.01)


def test_waiting_threads_get_the_lock_in_arrival_order() -> None:
    lock = ServiceLock()
    order: list[str] = []

    def take(name: str) -> None:
        with lock.held():
            order.append(name)

    with lock.held():
        threads = []
        for index, name in enumerate(["first", "second", "third"]):
            thread = threading.Thread(target=take, args=(name,))
            thread.start()
            threads.append(thread)
            _queued(lock, index + 1)
    for thread in threads:
        thread.join(timeout=10)

    assert order == ["first", "second", "third"]


def test_released_gives_the_lock_up_completely_and_takes_it_back_as_deep() -> None:
    lock = ServiceLock()
    entered = threading.Event()

    def other() -> None:
        with lock.held():
            entered.set()

    with lock.held(), lock.held():
        with lock.released():
            thread = threading.Thread(target=other)
            thread.start()
            assert entered.wait(timeout=10)
            thread.join(timeout=10)
        with lock.held():
            pass
    assert lock._owner is None

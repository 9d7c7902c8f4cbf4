"""The service lock: re-entrant, and given up completely while a Lambda function runs."""

from __future__ import annotations

import threading

from iot_dr_local.locking import ServiceLock


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
    # Fully released again: another thread takes it at once.
    thread = threading.Thread(target=other)
    entered.clear()
    thread.start()
    assert entered.wait(timeout=10)
    thread.join(timeout=10)

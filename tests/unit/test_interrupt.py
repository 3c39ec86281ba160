"""StopRequest turns SIGINT/SIGTERM into a flag while installed, and puts the previous handlers back."""

import os
import signal

import pytest

from blowtorch.interrupt import Interrupted, StopRequest


def test_signals_become_a_request_and_the_previous_handlers_come_back():
    seen = []

    def previous(number, frame):
        seen.append(number)

    old = {number: signal.signal(number, previous) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested and stop.signal_number == signal.SIGTERM and seen == []
            with pytest.raises(KeyboardInterrupt):  # a second signal aborts at once
                os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is previous and signal.getsignal(signal.SIGTERM) is previous
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]  # delivered to the handler that was there before
    finally:
        for number, handler in old.items():
            signal.signal(number, handler)


def test_interrupted_exits_as_shells_report_signals():
    assert Interrupted(signal.SIGINT).exit_code == 130 and Interrupted(signal.SIGTERM).exit_code == 143
    assert isinstance(Interrupted(signal.SIGINT), KeyboardInterrupt)

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
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.requested and stop.signal_number == signal.SIGINT and seen == []
            with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C aborts at once
                os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is previous and signal.getsignal(signal.SIGTERM) is previous
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]  # delivered to the handler that was there before
    finally:
        for number, handler in old.items():
            signal.signal(number, handler)


def test_after_a_stop_on_sigterm_repeated_sigterms_are_ignored_until_the_process_ends():
    """A launcher (torchrun, SLURM) may send SIGTERM again while sacred records INTERRUPTED."""
    old = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: the graceful stop is under way
            assert stop.signal_number == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN and signal.getsignal(signal.SIGINT) is old[signal.SIGINT]
        os.kill(os.getpid(), signal.SIGTERM)  # and after the loop, while the run is recorded
    finally:
        for number, handler in old.items():
            signal.signal(number, handler)


def test_interrupted_exits_as_shells_report_signals():
    assert Interrupted(signal.SIGINT).exit_code == 130 and Interrupted(signal.SIGTERM).exit_code == 143
    assert isinstance(Interrupted(signal.SIGINT), KeyboardInterrupt)

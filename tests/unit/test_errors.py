"""How a signal that lands in the middle of a call whose answer must not be lost is held."""

from __future__ import annotations

import os
import signal

import pytest

from envrepo.errors import Terminated, signals_deferred, terminate_like_ctrl_c


@pytest.mark.parametrize(
    ("sent", "raised"),
    [(signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_waits_for_the_block_then_acts(
    sent: signal.Signals, raised: type[BaseException]
) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    # As in a terminal's foreground job: a suite started in the background of a shell
    # inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    terminate_like_ctrl_c()
    finished = []
    try:
        with pytest.raises(raised), signals_deferred():
            os.kill(os.getpid(), sent)
            finished.append("the block ran to its end")
        assert finished == ["the block ran to its end"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])

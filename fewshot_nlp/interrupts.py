"""Ctrl-C and SIGTERM honoured wherever they land.

A signal handler that only raises can be defeated: an exception raised while a finalizer
runs (``__del__``) is printed and dropped by Python, and library code that catches broad
exceptions turns an interrupt into another error. So the handler *records* the signal as
well as raising, and the work loops and the writers ask ``check()`` before each batch and
before anything is renamed into place: a swallowed interrupt is raised again there, and a
command ends as interrupted whatever exception surfaced on the way out.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: int | None = None


class Interrupted(KeyboardInterrupt):
    """A recorded SIGINT or SIGTERM (a ``KeyboardInterrupt``, so code that cleans up on
    Ctrl-C cleans up on SIGTERM too)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum: int, _frame) -> None:
    global _received
    if _received is None:
        _received = signum
    raise Interrupted(signum)


def install() -> dict | None:
    """Record-and-raise handlers for SIGINT and SIGTERM; the previous ones, to restore
    (None off the main thread, where Python allows no handlers)."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        return None
    _received = None
    return {s: signal.signal(s, _on_signal) for s in SIGNALS}


def restore(previous: dict | None) -> None:
    """The handlers ``install`` replaced; what it recorded is forgotten (handled)."""
    global _received
    if previous is None:
        return
    _received = None
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def received() -> int | None:
    """The first signal recorded since ``install`` (None if none came)."""
    return _received


def check() -> None:
    """Raise again a signal that arrived and was swallowed on its way out."""
    if _received is not None:
        raise Interrupted(_received)

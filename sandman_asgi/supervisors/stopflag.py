"""A stop flag that signal handlers may set, and that a supervisor loop can sleep on.

``threading.Event`` is the obvious tool, but ``Event.set()`` takes a non-reentrant lock: a
signal that lands while the main thread is inside ``Event.wait()`` holding that lock
deadlocks the process. This flag only flips a bool and writes a byte to a socket pair, both
safe in a signal handler, and ``wait()`` sleeps in ``select()`` so a signal wakes it at once.
"""

from __future__ import annotations

import select
import socket


class StopFlag:
    """``set()``/``is_set()``/``wait()`` like ``threading.Event``, safe from signal handlers.

    ``poke()`` wakes a ``wait()`` without setting the flag: a supervisor uses it to handle
    a queued signal (SIGHUP, SIGTTIN, ...) immediately instead of at its next tick.
    """

    def __init__(self) -> None:
        self._set = False
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def set(self) -> None:
        """Raise the flag and wake any ``wait()``."""
        self._set = True
        self.poke()

    def is_set(self) -> bool:
        """Whether ``set()`` was called."""
        return self._set

    def poke(self) -> None:
        """Wake ``wait()`` without raising the flag."""
        try:
            self._writer.send(b"\0")
        except OSError:
            # Buffer full (a wake-up is already pending) or closed: nothing more to do.
            pass

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until ``set()``/``poke()`` or ``timeout`` seconds; return ``is_set()``."""
        if not self._set:
            try:
                select.select([self._reader], [], [], timeout)
            except (OSError, ValueError):
                # Closed under us (shutdown from another thread): report the flag as is.
                return self._set
            self._drain()
        return self._set

    def _drain(self) -> None:
        try:
            while self._reader.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        """Release the socket pair."""
        self._reader.close()
        self._writer.close()

"""Group commit: a thread with a database connection of its own writes whatever requests the
worker's threads are waiting on in one go, so that requests arriving while one batch is
written go out together in the next. Each requesting thread goes on only once its own
request is written: durability per request is unchanged; statements and commits per request
drop, and threads never contend for the same rows one by one."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import psycopg
from django.db import InterfaceError, OperationalError, connection

#: How long requests whose rows were locked wait before they are tried again, when nothing
#: else is waiting (seconds).
RETRY_PAUSE = 0.05

#: The longest the writer holds a batch back for the requesters its last write let go
#: (seconds); it never holds one back longer than that write took.
MAX_LINGER = 0.002


class WriterClosed(Exception):
    """The worker is stopping; nothing more is written."""


class WriterUnavailable(Exception):
    """The writer lost its database connection; the request was not written."""


@dataclass(kw_only=True)
class Request:
    """What a thread waits on; ``error`` is raised in that thread once ``done``."""

    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


R = TypeVar("R", bound=Request)


class GroupWriter(Generic[R]):
    """Subclasses write a batch in ``_write``, setting what each request learned."""

    #: Names the thread, and the failure a request raises when the database is gone.
    what = "write"
    #: See ``MAX_LINGER``; a class attribute, so that a test can widen it.
    max_linger = MAX_LINGER

    def __init__(self) -> None:
        self._waiting: list[R] = []
        self._lock = threading.Condition()
        self._closed = False
        name = f"conductor-{self.what.replace(' ', '-')}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: R, *, wait: bool = True) -> None:
        """Block until ``request`` is written and raise what went wrong with it; or, without
        ``wait``, only queue it."""
        with self._lock:
            if self._closed:
                raise WriterClosed()
            self._waiting.append(request)
            self._lock.notify()
        if not wait:
            return
        request.done.wait()
        if request.error is not None:
            raise request.error

    def close(self) -> None:
        """Write what is waiting, then stop; later requests raise ``WriterClosed``."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(10)

    def _write(self, batch: list[R]) -> list[R]:
        """Write ``batch``; return the requests to try again, whose rows another session
        keeps locked: they wait for the next batch, and delay no other request."""
        raise NotImplementedError

    def _run(self) -> None:
        again: list[R] = []
        released, took = 0, 0.0
        try:
            while True:
                with self._lock:
                    if again and self._closed:  # the worker hands these back
                        for request in again:
                            request.error = WriterClosed()
                            request.done.set()
                        again = []
                    if again and not self._waiting:
                        self._lock.wait(RETRY_PAUSE)
                    while not self._waiting and not again and not self._closed:
                        self._lock.wait()
                    self._linger(released, min(took, self.max_linger))
                    batch, self._waiting = again + self._waiting, []
                if not batch:
                    return  # closed, and nothing left to write
                began = time.monotonic()
                again = self._write_or_explain(batch)
                released, took = len(batch) - len(again), time.monotonic() - began
        finally:
            connection.close()

    def _linger(self, released: int, longest: float) -> None:
        """Wait, up to ``longest``, until as many requests wait as the last write let go.
        The threads it let go are usually back at once with their next request: taking
        only the first of them splits the threads into two groups whose batches take turns,
        each half full. Called holding the lock."""
        deadline = time.monotonic() + longest
        while self._waiting and len(self._waiting) < released and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._lock.wait(left)

    def _write_or_explain(self, batch: list[R]) -> list[R]:
        again: list[R] = []
        try:
            try:
                again = self._write(batch)
            except (OperationalError, InterfaceError, psycopg.OperationalError):
                connection.close()  # the database went away: reconnect and write again
                again = self._write(batch)
        except BaseException as exc:  # every waiter learns why, none waits forever
            connection.close()
            error = WriterUnavailable(f"Could not {self.what}: {exc}")
            error.__cause__ = exc
            for request in batch:
                request.error = error
        for request in batch:
            if not any(request is later for later in again):
                request.done.set()
        return again

"""The worker's ear: ``LISTEN`` for new work on the queues it serves, which wakes the claim
loop at once, and for cancellations of what it runs, which reach their handlers at once."""

from __future__ import annotations

import logging
import threading

from ..store.base import CANCEL_CHANNEL, PLAIN_READY_CHANNEL, READY_CHANNEL
from ..store.notify import connect_listener, ids_of
from .base import Identity, next_backoff
from .holdings import Holdings

logger = logging.getLogger("django_conductor.worker")


def listen(
    identity: Identity,
    holdings: Holdings,
    wake: threading.Event,
    stopping: threading.Event,
    ready: threading.Event,
    new_work: threading.Event,
) -> None:
    """``wake`` is set on any news for the claim loop, ``ready`` on news of ready work, and
    ``new_work`` on news of ready work that may fill a batch."""
    backoff = 0.0
    while not stopping.is_set():
        try:
            with connect_listener(READY_CHANNEL, PLAIN_READY_CHANNEL, CANCEL_CHANNEL) as listener:
                backoff = 0.0
                new_work.set()  # catch up on anything announced while not listening
                ready.set()
                wake.set()
                while not stopping.is_set():
                    for note in listener.notifies(timeout=1.0):
                        if note.channel == CANCEL_CHANNEL:
                            holdings.request_cancel(ids_of(note.payload))
                        elif not identity.queues or note.payload in identity.queues:
                            if note.channel == READY_CHANNEL:
                                new_work.set()
                            ready.set()
                            wake.set()
        except Exception as exc:  # the claim loop logs database trouble; just back off
            backoff = next_backoff(backoff)
            logger.debug("Listener disconnected (%s); reconnecting in %.1fs", exc, backoff)
            stopping.wait(backoff)

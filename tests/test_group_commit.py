"""The group writer's batching, with a writer that stands in for the database: what is
tested is which requests go out together, not what a write does."""

import threading
import time

from django_conductor.group_commit import GroupWriter, Request


class TimedWriter(GroupWriter[Request]):
    """Records each batch's size; its first write waits for ``gate``, its later ones take
    ``write_time`` seconds."""

    what = "write for a test"
    max_linger = 10.0  # far longer than any write here: the write's own time bounds it

    def __init__(self, write_time: float) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.write_time = write_time
        super().__init__()

    def _write(self, batch: list[Request]) -> list[Request]:
        if not self.sizes:
            assert self.gate.wait(30)
        else:
            time.sleep(self.write_time)
        self.sizes.append(len(batch))
        return []


def submit_all(writer: TimedWriter, count: int, gap: float = 0.0) -> list[Request]:
    requests = []
    for _ in range(count):
        requests.append(Request())
        writer.submit(requests[-1], wait=False)
        time.sleep(gap)
    return requests


def wait_done(requests: list[Request]) -> None:
    for request in requests:
        assert request.done.wait(30)


def test_the_requesters_a_write_let_go_are_waited_for_and_go_out_together():
    writer = TimedWriter(write_time=1.0)
    try:
        (first,) = submit_all(writer, 1)
        while writer._waiting:  # until the writer has taken it
            time.sleep(0.001)
        rest = submit_all(writer, 5)
        writer.gate.set()
        wait_done([first, *rest])  # two writes: 1, then the 5 that waited
        # The five come back one by one, 20 ms apart: well inside the last write's second.
        wait_done(submit_all(writer, 5, gap=0.02))
    finally:
        writer.close()
    assert writer.sizes == [1, 5, 5]


def test_the_writer_waits_no_longer_than_its_last_write_took():
    writer = TimedWriter(write_time=0.05)
    try:
        (first,) = submit_all(writer, 1)
        while writer._waiting:
            time.sleep(0.001)
        rest = submit_all(writer, 5)
        writer.gate.set()
        wait_done([first, *rest])
        # Only one of the five comes back: it is written alone once the wait is over.
        began = time.monotonic()
        wait_done(submit_all(writer, 1))
        waited = time.monotonic() - began
    finally:
        writer.close()
    assert writer.sizes == [1, 5, 1]
    assert waited < 5  # bounded by the 0.05 s write, not by max_linger's 10 s

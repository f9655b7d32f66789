"""The Absurd app of the comparison: one no-op task, on the peer's own database. Run as a
script it is the worker: the SDK's ``start_worker`` loop, at its defaults unless a
concurrency is given, stopping (after the tasks it holds) on SIGTERM."""

import os
import signal
import sys

from absurd_sdk import Absurd

QUEUE = "default"

app = Absurd(os.environ["BENCH_PEER_CONNINFO"], queue_name=QUEUE)


@app.register_task(name="noop")
def noop(params, ctx):
    return None


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: app.stop_worker())
    options = {"concurrency": int(sys.argv[1])} if len(sys.argv) > 1 else {}
    app.start_worker(**options)
    app.close()

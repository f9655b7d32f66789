"""The Procrastinate app of the comparison: one no-op task, on the peer's own database."""

import os

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ["BENCH_PEER_CONNINFO"])
)


@app.task(name="noop")
def noop(n=None):
    return None

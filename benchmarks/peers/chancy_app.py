"""The Chancy app of the comparison: one no-op job, on the peer's own database."""

import os

from chancy import Chancy, job

app = Chancy(os.environ["BENCH_PEER_CONNINFO"])


@job()
def noop(n=None):
    return None

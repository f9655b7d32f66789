"""The DBOS app of the comparison: one no-op workflow, with the peer's own database as its
system database. Run as a script it is the worker: DBOS launched (it runs what is enqueued on
every registered queue) until SIGTERM, then shut down after the workflows it is running."""

import os
import signal
import threading

from dbos import DBOS
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

QUEUE = "bench"


def system_database_url(driver: str = "postgresql") -> str:
    parts = conninfo_to_dict(os.environ["BENCH_PEER_CONNINFO"])
    return URL.create(
        driver,
        username=parts.get("user"),
        password=parts.get("password"),
        host=parts.get("host"),
        port=int(parts["port"]) if parts.get("port") else None,
        database=parts["dbname"],
    ).render_as_string(hide_password=False)


@DBOS.workflow(name="noop")
def noop(n=None):
    return None


if __name__ == "__main__":
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    DBOS(config={"name": "bench-peer", "system_database_url": system_database_url()})
    DBOS.launch()
    stopping.wait()
    DBOS.destroy(workflow_completion_timeout_sec=10)

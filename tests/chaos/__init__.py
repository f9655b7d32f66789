"""The fault-injection suite: real workers, real signals, a PostgreSQL cluster of its own that
it restarts and kills, and a ledger of every step's side effect checked against DESIGN.md's
guarantees. Run it with ``python -m tests.chaos`` (see docs/reliability.md)."""

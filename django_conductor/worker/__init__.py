"""The worker, one module per duty: ``process`` (lifecycle, threads), ``signals``,
``claiming`` (the claim loop), ``outcomes`` (writing what attempts came to), ``duties`` (the
heartbeat: leases and the reaper), ``listener`` (notifications), ``holdings`` (what the
process holds, behind one lock), ``attempt`` (running one attempt), ``telemetry`` (its
signals, spans and metrics),
``connections`` (the threads' own) and ``base`` (what they share)."""

from .process import Worker

__all__ = ["Worker"]

"""Processes: the supervisor of ``streamkit run`` (``supervisor``) and the worker process
it starts (``worker``)."""

from streamkit.host.supervisor import Supervisor, SupervisorOptions
from streamkit.host.worker import ProcessOptions, run_worker

__all__ = ["ProcessOptions", "Supervisor", "SupervisorOptions", "run_worker"]

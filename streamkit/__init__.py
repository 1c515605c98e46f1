"""streamkit: serverless-style processor functions on Apache Kafka.

::

    from streamkit import App

    app = App("orders")
    app.topic("orders.placed", value="OrderPlaced", partitions=4)
    app.topic("orders.validated", value="OrderValidated", partitions=4)

    @app.processor(input="orders.placed", output="orders.validated")
    def validate(order: dict) -> dict | None:
        ...
"""

from streamkit.app import App, Topic, load_app
from streamkit.contracts.changes import Change
from streamkit.errors import ConfigError, ProcessorTimeoutError, StreamkitError
from streamkit.failures import (
    Action,
    DeadLetter,
    Decision,
    Failure,
    FailureHandler,
    FailurePolicy,
    Retry,
    RetryPolicy,
    Stage,
)
from streamkit.ops.client import AppClient
from streamkit.processor import KEEP_KEY, Context, Emit, Middleware, RecordInfo
from streamkit.records import Event
from streamkit.settings import Settings
from streamkit.state._step_call import StepContext
from streamkit.state.dedupe import Dedupe
from streamkit.state.timers import Timer
from streamkit.state.workflow import END, Goto, StepFailed, Workflow

__version__ = "0.1.0"

__all__ = [
    "END",
    "KEEP_KEY",
    "Action",
    "App",
    "AppClient",
    "Change",
    "ConfigError",
    "Context",
    "DeadLetter",
    "Decision",
    "Dedupe",
    "Emit",
    "Event",
    "Failure",
    "FailureHandler",
    "FailurePolicy",
    "Goto",
    "Middleware",
    "ProcessorTimeoutError",
    "RecordInfo",
    "Retry",
    "RetryPolicy",
    "Settings",
    "Stage",
    "StepContext",
    "StepFailed",
    "StreamkitError",
    "Timer",
    "Topic",
    "Workflow",
    "__version__",
    "load_app",
]

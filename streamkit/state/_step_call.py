"""How a workflow step is called: its context (``ctx.emit``, the idempotency key), async
steps awaited with their timeout, sync ones measured against it."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any

from streamkit.errors import StepTimeoutError, WorkflowError
from streamkit.state.workflow import Workflow

__all__ = ["StepContext", "arity", "call", "describe"]

_loops = threading.local()


class StepContext:
    """What a step (or compensation) may ask for: the instance, the attempt, the clock,
    and :meth:`emit` for its side effects."""

    __slots__ = (
        "_emits",
        "_outputs",
        "attempt",
        "id",
        "idempotency_key",
        "now_ms",
        "step",
        "workflow",
    )

    def __init__(self, workflow: Workflow, instance: str, step: str, attempt: int, now: int):
        self.workflow = workflow.name
        self.id = instance
        self.step = step
        self.attempt = attempt
        self.now_ms = now
        self.idempotency_key = f"{workflow.name}/{instance}/{step}"
        self._outputs = workflow.outputs
        self._emits: list[list[Any]] = []

    def emit(self, topic: Any, value: Any, key: str | None = None) -> None:
        """Write ``value`` to ``topic`` (one of the workflow's ``outputs``), keyed by
        ``key`` (default: the instance id), with the instance's state change."""
        name = str(getattr(topic, "name", topic))
        if name not in self._outputs:
            outputs = list(self._outputs)
            raise WorkflowError(
                f"workflow {self.workflow}: step {self.step} emits to {name}, "
                f"which is not one of its outputs {outputs}"
            )
        self._emits.append([name, self.id if key is None else str(key), value])

    def __repr__(self) -> str:
        return f"StepContext({self.workflow}/{self.id}: {self.step}, attempt {self.attempt})"


def call(fn: Callable[..., Any], args: tuple[Any, ...], timeout: float | None, what: str) -> Any:
    """Call a step (awaiting it when it is async, bounded by ``timeout``)."""
    started = perf_counter()
    result = fn(*args)
    if asyncio.iscoroutine(result):
        return _await(result, timeout, what)
    if timeout is not None and perf_counter() - started > timeout:
        raise StepTimeoutError(
            f"{what} took {perf_counter() - started:.3f}s, longer than its "
            f"timeout of {timeout:g}s (its result is dropped)"
        )
    return result


def _await(call: Any, timeout: float | None, what: str) -> Any:
    loop = getattr(_loops, "loop", None)
    if loop is None:
        loop = _loops.loop = asyncio.new_event_loop()

    async def bounded() -> Any:
        try:
            return await (call if timeout is None else asyncio.wait_for(call, timeout))
        except TimeoutError:
            raise StepTimeoutError(f"{what} took longer than its timeout of {timeout:g}s") from None

    return loop.run_until_complete(bounded())


def arity(fn: Callable[..., Any]) -> int:
    parameters = inspect.signature(fn).parameters.values()
    return sum(1 for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

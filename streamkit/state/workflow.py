"""Durable workflows (sagas): named steps run one after another per instance, with their
state and history in a store with a compacted changelog.

``flow = app.workflow("fulfilment", start=ORDERS, id="order_id", events=[APPROVALS])``
declares a workflow; its steps are functions decorated in the order they run::

    @flow.step(retries=2, timeout="5s", compensate=release_stock)
    def reserve_stock(order, ctx): ...            # its return value is the next step's input

    @flow.wait(APPROVALS, timeout="1h", on_timeout="escalate", when=is_large)
    def approval(order, event): ...               # runs when the instance's event arrives

- **Instances** are keyed by ``id`` (a field of every input, or a function of it). A record
  of ``start`` starts one; the same id starts once (a second start is counted in the
  instance's history, and nothing runs). Every input is first repartitioned by the id
  (see :mod:`streamkit.patterns`), so an instance's records meet in one partition.
- **Transitions**: a step goes on to the step after it, or to ``next=`` (one name, or
  several, one of which it picks by returning :class:`Goto`); :data:`END` ends the
  workflow there. Returning None passes the step's input on unchanged.
- **Failure**: an exception is retried with the step's :class:`RetryPolicy` (the wait is
  a durable timer); :class:`StepFailed` is a business failure, never retried. Either way,
  once the step gives up, the steps that completed are compensated in reverse order (their
  ``compensate`` function gets the step's output), and the instance ends ``compensated``
  (or ``failed`` when nothing needed compensating, or a compensation gave up too).
- **Waiting**: a ``wait`` step waits for a record of its topic with the instance's id,
  durably, up to ``timeout``; then it goes to ``on_timeout`` (a step name, ``compensate``
  or ``fail``). Events that arrive before their instance exists, or before it waits for
  them, are buffered in the instance (unclaimed ones go to the dead-letter topic after
  ``buffer_ttl``; past ``buffer_max`` per instance, to the dead-letter topic at once).
- **Terminal states**: ``completed``, ``compensated`` and ``failed``, each reached once;
  the instance's result goes to ``output`` keyed by its id, then it is remembered for
  ``retain`` (so duplicate starts are recognised) and forgotten.
- **Side effects** go through ``ctx.emit(topic, value)`` to the declared ``outputs``: they
  are written with the instance's state change, so under ``exactly_once`` a step's
  emits are visible once, whatever crashes. A step that calls the outside world directly
  should pass ``ctx.idempotency_key`` along: at least once, a step can run again after a
  crash.

Steps may be ``async def`` (awaited on the worker's thread with their timeout). A sync step
cannot be interrupted: one that returns after its ``timeout`` counts as a failed attempt,
and its emits are dropped.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from streamkit.errors import ConfigError, StepFailed
from streamkit.failures.policy import RetryPolicy
from streamkit.settings import parse_duration
from streamkit.state.stores import state_key

__all__ = [
    "END",
    "STATUSES",
    "TERMINAL",
    "Goto",
    "StepFailed",
    "StepSpec",
    "Workflow",
]

F = TypeVar("F", bound=Callable[..., Any])

END: Final = "$end"
"""A step's ``next=`` that ends the workflow after it (``completed``)."""

STATUSES: Final = (
    "pending",
    "running",
    "retrying",
    "waiting",
    "compensating",
    "completed",
    "compensated",
    "failed",
)
"""An instance's status (``pending``: events buffered, not started yet)."""

TERMINAL: Final = frozenset({"completed", "compensated", "failed"})
"""The statuses an instance ends in, exactly one of them, once."""

OnTimeout = str
_EXITS: Final = frozenset({END, "compensate", "fail"})
_STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True, slots=True)
class Goto:
    """A step's result naming the next step (one of its ``next=``), with that step's input
    (None: this step's input)."""

    step: str
    data: Any = None


@dataclass(frozen=True)
class StepSpec:
    """A declared step.

    Attributes:
        name: unique within the workflow.
        fn: ``(data[, ctx])``, or for a wait ``(data, event[, ctx])``.
        next: the steps it may go to (None: the one declared after it; ``(END,)``: the
            workflow ends after it).
        retry: its retry policy.
        timeout_s: a step: seconds a call may take; a wait: seconds to wait (None: no
            limit).
        compensate: ``(output[, ctx])``, undoing the step once a later one failed.
        event: a wait's topic (None: a plain step).
        when: a wait's condition on its input (False: the wait is skipped).
        on_timeout: a wait's next step when it times out, or ``compensate`` or ``fail``.
        arity: how many positional parameters ``fn`` takes.
        is_async: ``fn`` is a coroutine function.
    """

    name: str
    fn: Callable[..., Any]
    next: tuple[str, ...] | None
    retry: RetryPolicy
    timeout_s: float | None
    compensate: Callable[..., Any] | None = None
    event: str | None = None
    when: Callable[[Any], bool] | None = None
    on_timeout: OnTimeout = "compensate"
    arity: int = 1
    is_async: bool = False

    @property
    def takes_context(self) -> bool:
        """Whether ``fn`` takes the step context after its other parameters."""
        return self.arity == (3 if self.event is not None else 2)


@dataclass
class Workflow:
    """A declared workflow: use its :meth:`step`, :meth:`wait` and :meth:`compensation`
    decorators (see the module docstring). Made by ``app.workflow(...)``.

    Attributes:
        name: the workflow's name (its store, aggregate and repartition topic's).
        start: the topic whose records start instances.
        events: the topics of the events its waits wait for, each with how to find the
            instance id in them.
        id: how to find the instance id in a start record (a field name or a function).
        output: where each instance's result goes when it ends.
        outputs: the topics steps may ``ctx.emit`` to.
        history: how many history entries an instance keeps (the oldest are dropped).
        retain_s: seconds an ended instance is remembered.
        buffer_ttl_s: seconds an event waits in the buffer of an instance not started.
        buffer_max: events an instance buffers at most.
        retry: the retry policy of steps that set none.
        steps: the steps, in declaration order.
        compensations: compensations declared apart (``@flow.compensation("step")``).
    """

    name: str
    start: str
    events: dict[str, str | Callable[[Any], Any]]
    id: str | Callable[[Any], Any]
    output: str | None
    outputs: tuple[str, ...] = ()
    history: int = 50
    retain_s: float = 7 * 86400.0
    buffer_ttl_s: float = 3600.0
    buffer_max: int = 100
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    steps: dict[str, StepSpec] = field(default_factory=dict)
    compensations: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start in self.events:
            raise ConfigError(
                f"workflow {self.name}: {self.start} is its start topic and "
                "cannot also be one of its events"
            )
        if self.history < 1 or self.buffer_max < 1:
            raise ConfigError(f"workflow {self.name}: history and buffer_max must be >= 1")
        if self.retain_s <= 0 or self.buffer_ttl_s <= 0:
            raise ConfigError(f"workflow {self.name}: retain and buffer_ttl must be positive")

    # -- declaring steps ------------------------------------------------------------------
    def step(
        self,
        *,
        name: str | None = None,
        next: str | Sequence[str] | None = None,
        retries: int | RetryPolicy | None = None,
        timeout: str | float | None = None,
        compensate: Callable[..., Any] | None = None,
    ) -> Callable[[F], F]:
        """Decorate ``fn(data)`` or ``fn(data, ctx)``: a step, run after the one declared
        before it (or as ``next=`` of another step says). It returns the next step's input
        (None: its own input), or a :class:`Goto`."""

        def register(fn: F) -> F:
            self._add(fn, name, next, retries, timeout, compensate, None, None, "compensate")
            return fn

        return register

    def wait(
        self,
        event: Any,
        *,
        timeout: str | float,
        on_timeout: str = "compensate",
        when: Callable[[Any], bool] | None = None,
        name: str | None = None,
        next: str | Sequence[str] | None = None,
        retries: int | RetryPolicy | None = None,
        compensate: Callable[..., Any] | None = None,
    ) -> Callable[[F], F]:
        """Decorate ``fn(data, event)`` or ``fn(data, event, ctx)``: a step that waits for a
        record of ``event`` (a topic of the workflow's ``events``) with the instance's id,
        at most ``timeout``, then runs with it. ``when(data)`` False skips the wait."""
        topic = str(getattr(event, "name", event))

        def register(fn: F) -> F:
            if topic not in self.events:
                raise ConfigError(
                    f"workflow {self.name}: wait {_label(fn, name)} is for "
                    f"{topic}, which is not one of its events "
                    f"{sorted(self.events)}"
                )
            self._add(fn, name, next, retries, timeout, compensate, topic, when, on_timeout)
            return fn

        return register

    def compensation(self, step: str) -> Callable[[F], F]:
        """Decorate ``fn(output)`` or ``fn(output, ctx)``: the compensation of ``step``
        (declared apart from it)."""

        def register(fn: F) -> F:
            if step in self.compensations:
                raise ConfigError(f"workflow {self.name}: step {step} has two compensations")
            _arity(fn, f"workflow {self.name}: compensation of {step}", (1, 2))
            self.compensations[step] = fn
            return fn

        return register

    def _add(
        self,
        fn: Callable[..., Any],
        name: str | None,
        next: str | Sequence[str] | None,
        retries: int | RetryPolicy | None,
        timeout: str | float | None,
        compensate: Callable[..., Any] | None,
        event: str | None,
        when: Callable[[Any], bool] | None,
        on_timeout: str,
    ) -> None:
        label = _label(fn, name)
        where = f"workflow {self.name}: step {label}"
        if not _STEP_NAME.match(label) or label in {"compensate", "fail"}:
            raise ConfigError(
                f"{where}: a step name is of [A-Za-z0-9_.-], starts with a "
                "letter, and is not 'compensate' or 'fail' (give one with "
                "name=)"
            )
        if label in self.steps:
            raise ConfigError(f"{where} is declared twice")
        arity = _arity(fn, where, (2, 3) if event is not None else (1, 2))
        if compensate is not None:
            _arity(compensate, f"{where}: its compensation", (1, 2))
        targets = None if next is None else ((next,) if isinstance(next, str) else tuple(next))
        if targets == ():
            raise ConfigError(f"{where}: next= names no step (use END to end there)")
        seconds = None if timeout is None else _seconds(timeout)
        if event is not None and seconds is None:
            raise ConfigError(f"{where}: a wait needs a timeout")
        self.steps[label] = StepSpec(
            name=label,
            fn=fn,
            next=targets,
            retry=RetryPolicy.of(retries, self.retry),
            timeout_s=seconds,
            compensate=compensate,
            event=event,
            when=when,
            on_timeout=on_timeout,
            arity=arity,
            is_async=inspect.iscoroutinefunction(fn),
        )

    # -- what the runtime asks ------------------------------------------------------------
    @property
    def inputs(self) -> tuple[str, ...]:
        """The topics routed to the workflow: its start topic, then its events."""
        return (self.start, *self.events)

    def instance_id(self, topic: str, event: Any) -> str | None:
        """The instance id of a record of ``topic`` (None: it has none)."""
        return state_key(self.id if topic == self.start else self.events[topic], event, None)

    def first(self) -> str:
        """The first step."""
        return next(iter(self.steps))

    def successors(self, step: str) -> tuple[str, ...]:
        """Where ``step`` may go next when it succeeds (:data:`END` included)."""
        spec = self.steps[step]
        if spec.next is not None:
            return spec.next
        names = list(self.steps)
        at = names.index(step)
        return (names[at + 1],) if at + 1 < len(names) else (END,)

    def compensation_of(self, step: str) -> Callable[..., Any] | None:
        """The function that undoes ``step`` (None: it needs none)."""
        return self.steps[step].compensate or self.compensations.get(step)

    def validate(self) -> None:
        """Refuse, with one clear line, a definition that cannot run: no steps, an unknown
        step named, a compensation for a missing step, a step never reached, or a cycle
        with no way out."""
        where = f"workflow {self.name}"
        if not self.steps:
            raise ConfigError(f"{where} declares no steps (@{self.name}.step())")
        for step, fn in self.compensations.items():
            if step not in self.steps:
                raise ConfigError(
                    f"{where}: compensation {_label(fn, None)} is for step "
                    f"{step!r}, which it does not declare"
                )
            if self.steps[step].compensate is not None:
                raise ConfigError(f"{where}: step {step} has two compensations")
        edges: dict[str, set[str]] = {}
        for name, spec in self.steps.items():
            targets = set(self.successors(name))
            if spec.event is not None:
                targets.add(spec.on_timeout)
            unknown = sorted(t for t in targets if t not in _EXITS and t not in self.steps)
            if unknown:
                steps = ", ".join(self.steps)
                raise ConfigError(
                    f"{where}: step {name} goes to {', '.join(unknown)}, which "
                    f"it does not declare (steps: {steps})"
                )
            edges[name] = targets
        reached = _reachable(self.first(), edges)
        missed = [s for s in self.steps if s not in reached]
        if missed:
            raise ConfigError(
                f"{where}: step(s) {', '.join(missed)} are never reached from {self.first()}"
            )
        stuck = [s for s in self.steps if not _reachable(s, edges) & _EXITS]
        if stuck:
            raise ConfigError(
                f"{where}: step(s) {', '.join(stuck)} are in a cycle without an "
                "exit (no path from them reaches END or a timeout's "
                "compensate or fail)"
            )

    def edges(self) -> list[tuple[str, str, str]]:
        """The step graph: (from, to, label) with ``[*]`` for the start and end."""
        found = [("[*]", self.first(), "")]
        for name, spec in self.steps.items():
            label = "" if spec.event is None else f"{spec.event}"
            for target in self.successors(name):
                found.append((name, "[*]" if target == END else target, label))
            if spec.event is not None:
                if spec.when is not None:
                    for target in self.successors(name):  # skipped when its condition fails
                        found.append((name, "[*]" if target == END else target, "skipped"))
                found.append((name, spec.on_timeout, "timeout"))
        return list(dict.fromkeys(found))


def _label(fn: Any, name: str | None) -> str:
    return str(name or getattr(fn, "__name__", repr(fn)))


def _seconds(duration: str | float) -> float:
    seconds = duration if isinstance(duration, int | float) else parse_duration(duration)
    if seconds <= 0:
        raise ConfigError(f"a step timeout must be positive, not {duration!r}")
    return float(seconds)


def _arity(fn: Callable[..., Any], where: str, allowed: tuple[int, ...]) -> int:
    if not callable(fn):
        raise ConfigError(f"{where}: {fn!r} is not callable")
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read the signature of {fn!r}: {exc}") from exc
    count = sum(1 for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    if count not in allowed:
        shapes = (
            {1: "(data)", 2: "(data, ctx)"}
            if allowed == (1, 2)
            else {2: "(data, event)", 3: "(data, event, ctx)"}
        )
        raise ConfigError(
            f"{where} must take {' or '.join(shapes.values())}, not {count} parameters"
        )
    return count


def _reachable(origin: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen = {origin}
    todo = [origin]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen

"""How a workflow instance moves: the fold of its records and the handler of its timers,
for the aggregate a workflow runs as (see :mod:`streamkit.state.workflow`).

An instance is a JSON document in the workflow's store. Each record or timer makes a new
one: the steps it ran (each call in the history), the emits of those steps (``_out``,
projected to their topics with the state change, so they are written in the same
at-least-once unit or transaction) and what they measured (``_calls``, for metrics).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, Final

import orjson

from streamkit.errors import WorkflowError, WorkflowExpiredError
from streamkit.state._step_call import StepContext, arity, call, describe
from streamkit.state.aggregate import Routed
from streamkit.state.workflow import END, TERMINAL, Goto, StepFailed, StepSpec, Workflow

__all__ = ["Saga", "StepContext"]

RETRY: Final = "wf.retry"
TIMEOUT: Final = "wf.timeout"
EXPIRE: Final = "wf.expire"
FORGET: Final = "wf.forget"
_MAX_TRANSITIONS = 1000


class Saga:
    """The aggregate functions of a :class:`Workflow`: ``fold``, ``on_timer``, ``project``
    and ``report``."""

    def __init__(self, workflow: Workflow) -> None:
        self.flow = workflow

    # -- the aggregate's functions --------------------------------------------------------
    def fold(self, state: dict[str, Any] | None, envelope: dict[str, Any], ctx: Any) -> Any:
        """A start or an event of one instance (an envelope of the repartition topic)."""
        topic, event = envelope["input"], envelope["part"]
        now = ctx.timers.now_ms
        inst = _fresh(state)
        if topic == self.flow.start:
            if state is not None and inst["status"] != "pending":
                inst["duplicates"] = inst.get("duplicates", 0) + 1
                self._log(inst, {"kind": "duplicate start", "at": now, "input": event})
                inst["_calls"] = [["start", "duplicate", 0.0]]
                return inst
            if state is None:
                inst.update(id=str(ctx.key), buffer=[], history=[])
            else:
                ctx.timers.cancel(name=EXPIRE)
            inst.update(
                status="running",
                step=self.flow.first(),
                data=event,
                attempt=0,
                done=[],
                started=now,
                updated=now,
                duplicates=0,
            )
            self._log(inst, {"kind": "start", "at": now, "input": event})
            inst["_calls"].append(["start", "started", 0.0])
            self._advance(inst, ctx, now)
            return inst
        if state is None:  # the instance does not exist yet: keep the event for it
            inst.update(id=str(ctx.key), status="pending", buffer=[], history=[], updated=now)
            ctx.timers.schedule(after=self.flow.buffer_ttl_s, name=EXPIRE)
        waiting = inst.get("waiting")
        if inst["status"] == "waiting" and waiting and int(ctx.timestamp) > waiting["until"]:
            # Written after the wait's deadline: the wait timed out first, as it would
            # have had the record been read on time (the worker was down, or behind).
            ctx.timers.cancel(name=TIMEOUT)
            self._timed_out(inst, ctx, now)
            waiting = inst.get("waiting")
        if inst["status"] in TERMINAL:
            why = f"the instance is {inst['status']}"
            self._log(
                inst,
                {"kind": "event ignored", "event": topic, "at": now, "input": event, "why": why},
            )
            return inst
        if inst["status"] == "waiting" and waiting and waiting["event"] == topic:
            ctx.timers.cancel(name=TIMEOUT)
            inst.update(status="running", event=event, waiting=None)
            self._advance(inst, ctx, now)
            return inst
        if len(inst["buffer"]) >= self.flow.buffer_max:
            raise WorkflowError(
                f"workflow {self.flow.name}: instance {inst['id']} already "
                f"holds {self.flow.buffer_max} events it does not wait for "
                "(buffer_max)"
            )
        inst["buffer"].append([topic, event, now])
        inst["updated"] = now
        return inst

    def on_timer(self, state: dict[str, Any] | None, timer: Any, ctx: Any) -> Any:
        """A retry's wait ended, a wait timed out, buffered events expired, or an ended
        instance's retention is over."""
        if timer.name == FORGET or state is None:
            return None if timer.name == FORGET else state
        inst = _fresh(state)
        now = ctx.timers.now_ms
        status = inst["status"]
        if timer.name == EXPIRE and status == "pending":
            events = [{"input": t, "event": e, "at": at} for t, e, at in inst["buffer"]]
            raise WorkflowExpiredError(
                f"workflow {self.flow.name}: {len(events)} event(s) for instance "
                f"{inst['id']} waited {self.flow.buffer_ttl_s:g}s (buffer_ttl) and it never "
                "started",
                None,
                events,
            )
        if timer.name == RETRY and status in {"retrying", "compensating"}:
            inst["status"] = "running" if status == "retrying" else status
            self._advance(inst, ctx, now)
        elif timer.name == TIMEOUT and status == "waiting":
            self._timed_out(inst, ctx, now)
        return inst

    @staticmethod
    def project(state: Any) -> list[Any]:
        """The emits of the last change, each to its topic."""
        out = state.get("_out") if isinstance(state, dict) else None
        return [Routed(topic, key, value) for topic, key, value in out or ()]

    @staticmethod
    def report(state: Any) -> list[tuple[str, str, float]]:
        """What the last change ran: (step, outcome, seconds) per call."""
        calls = state.get("_calls") if isinstance(state, dict) else None
        return [(step, outcome, seconds) for step, outcome, seconds in calls or ()]

    # -- moving an instance ---------------------------------------------------------------
    def _advance(self, inst: dict[str, Any], ctx: Any, now: int) -> None:
        """Run steps (or compensations) until the instance waits or ends."""
        for _ in range(_MAX_TRANSITIONS):
            status = inst["status"]
            if status == "running":
                going = self._run(inst, ctx, now)
            elif status == "compensating":
                going = self._compensate(inst, ctx, now)
            else:
                return
            if not going:
                return
        self._give_up(inst, ctx, now, f"more than {_MAX_TRANSITIONS} steps in one go")

    def _run(self, inst: dict[str, Any], ctx: Any, now: int) -> bool:
        """Run the current step; whether the instance goes on at once."""
        spec = self.flow.steps[inst["step"]]
        data = inst["data"]
        if spec.event is not None and "event" not in inst:
            try:
                skip = spec.when is not None and not spec.when(data)
            except Exception as exc:  # noqa: BLE001 - user code: the step fails for good
                why = f"the when= of step {spec.name} raised {describe(exc)}"
                self._log(
                    inst,
                    {
                        "step": spec.name,
                        "kind": "wait",
                        "outcome": "failed",
                        "at": now,
                        "error": why,
                    },
                )
                return self._give_up(inst, ctx, now, why)
            if skip:
                self._log(
                    inst, {"step": spec.name, "kind": "wait", "outcome": "skipped", "at": now}
                )
                inst["_calls"].append([spec.name, "skipped", 0.0])
                return self._next(inst, ctx, now, spec, data, None)
            claimed = next((i for i, b in enumerate(inst["buffer"]) if b[0] == spec.event), None)
            if claimed is None:
                assert spec.timeout_s is not None  # noqa: S101 - a wait has a timeout
                # The deadline counts from the time of what started the wait (a record's
                # timestamp, or a timer's due time), not from when it was handled.
                until = int(ctx.timestamp) + int(spec.timeout_s * 1000)
                inst.update(status="waiting", waiting={"event": spec.event, "until": until})
                ctx.timers.schedule(at=until, name=TIMEOUT)
                self._log(
                    inst,
                    {
                        "step": spec.name,
                        "kind": "wait",
                        "outcome": "waiting",
                        "event": spec.event,
                        "at": now,
                    },
                )
                return False
            inst["event"] = inst["buffer"].pop(claimed)[1]
        attempt = inst["attempt"] + 1
        step_ctx = StepContext(self.flow, inst["id"], spec.name, attempt, now)
        args = (data,) if spec.event is None else (data, inst["event"])
        entry: dict[str, Any] = {
            "step": spec.name,
            "kind": "wait" if spec.event else "step",
            "attempt": attempt,
            "at": now,
            "input": data,
        }
        if spec.event is not None:
            entry["event"] = inst["event"]
        started = perf_counter()
        try:
            result = call(
                spec.fn,
                (*args, step_ctx) if spec.takes_context else args,
                spec.timeout_s,
                f"step {spec.name}",
            )
            target, output = self._result(spec, result, data)
        except Exception as exc:  # noqa: BLE001 - user code: retried, then compensated
            seconds = perf_counter() - started
            return self._failed(inst, ctx, now, spec, exc, entry, seconds)
        seconds = perf_counter() - started
        entry.update(outcome="completed", output=output, seconds=round(seconds, 6))
        self._log(inst, entry)
        inst["_calls"].append([spec.name, "completed", seconds])
        inst["_out"] += step_ctx._emits
        if self.flow.compensation_of(spec.name) is not None:
            inst["done"].append([spec.name, output])
        return self._next(inst, ctx, now, spec, output, target)

    def _result(self, spec: StepSpec, result: Any, data: Any) -> tuple[str | None, Any]:
        """The next step a result names (None: the default) and the next input."""
        target = None
        if isinstance(result, Goto):
            allowed = list(self.flow.successors(spec.name))
            if result.step not in allowed:
                raise WorkflowError(
                    f"step {spec.name} went to {result.step}, which is not in its next= {allowed}"
                )
            target, result = result.step, result.data
        output = data if result is None else result
        try:
            orjson.dumps(output)
        except TypeError as exc:
            raise WorkflowError(
                f"step {spec.name} returned a value that is not JSON: {exc}"
            ) from None
        return target, output

    def _next(
        self,
        inst: dict[str, Any],
        ctx: Any,
        now: int,
        spec: StepSpec,
        output: Any,
        target: str | None,
    ) -> bool:
        successors = self.flow.successors(spec.name)
        if target is None:
            if len(successors) > 1:
                return self._give_up(
                    inst,
                    ctx,
                    now,
                    f"step {spec.name} may go to {', '.join(successors)} and returned no Goto",
                )
            target = successors[0]
        inst.pop("event", None)
        if target == END:
            self._finish(inst, ctx, now, "completed", result=output)
            return False
        inst.update(step=target, data=output, attempt=0)
        return True

    def _failed(
        self,
        inst: dict[str, Any],
        ctx: Any,
        now: int,
        spec: StepSpec,
        exc: Exception,
        entry: dict[str, Any],
        seconds: float,
    ) -> bool:
        error = describe(exc)
        entry.update(error=error, seconds=round(seconds, 6))
        attempt = entry["attempt"]
        if (
            not isinstance(exc, StepFailed | WorkflowError)
            and spec.retry.retryable(exc)
            and (attempt < spec.retry.attempts)
        ):
            delay = spec.retry.delay(attempt)
            entry["outcome"] = "retrying"
            self._log(inst, entry)
            inst["_calls"].append([spec.name, "retried", seconds])
            inst.update(status="retrying", attempt=attempt)
            ctx.timers.schedule(after=delay, name=RETRY)
            return False
        entry["outcome"] = "failed"
        self._log(inst, entry)
        inst["_calls"].append([spec.name, "failed", seconds])
        return self._give_up(inst, ctx, now, f"step {spec.name} failed: {error}")

    def _give_up(self, inst: dict[str, Any], ctx: Any, now: int, error: str) -> bool:
        """The instance cannot go on: compensate what completed (or fail)."""
        inst["error"] = error
        inst.pop("event", None)
        if inst.get("done"):
            inst.update(status="compensating", attempt=0)
            return True
        self._finish(inst, ctx, now, "failed")
        return False

    def _compensate(self, inst: dict[str, Any], ctx: Any, now: int) -> bool:
        """Undo the last completed step not undone yet (or end, compensated)."""
        if not inst["done"]:
            self._finish(inst, ctx, now, "compensated")
            return False
        step, output = inst["done"][-1]
        spec = self.flow.steps[step]
        compensate = self.flow.compensation_of(step)
        assert compensate is not None  # noqa: S101 - only such steps are in "done"
        attempt = inst["attempt"] + 1
        step_ctx = StepContext(self.flow, inst["id"], step, attempt, now)
        entry = {
            "step": step,
            "kind": "compensation",
            "attempt": attempt,
            "at": now,
            "input": output,
        }
        started = perf_counter()
        try:
            args = (output, step_ctx) if arity(compensate) == 2 else (output,)
            call(compensate, args, spec.timeout_s, f"compensation of {step}")
        except Exception as exc:  # noqa: BLE001 - user code: retried, then the saga fails
            seconds = perf_counter() - started
            entry.update(error=describe(exc), seconds=round(seconds, 6))
            if spec.retry.retryable(exc) and attempt < spec.retry.attempts:
                entry["outcome"] = "retrying"
                self._log(inst, entry)
                inst["_calls"].append([f"{step}.compensation", "retried", seconds])
                inst["attempt"] = attempt
                ctx.timers.schedule(after=spec.retry.delay(attempt), name=RETRY)
                return False
            entry["outcome"] = "failed"
            self._log(inst, entry)
            inst["_calls"].append([f"{step}.compensation", "failed", seconds])
            inst["error"] = f"{inst.get('error')}; compensation of {step} failed: {entry['error']}"
            self._finish(inst, ctx, now, "failed")
            return False
        seconds = perf_counter() - started
        entry.update(outcome="compensated", seconds=round(seconds, 6))
        self._log(inst, entry)
        inst["_calls"].append([f"{step}.compensation", "compensated", seconds])
        inst["_out"] += step_ctx._emits
        inst["done"].pop()
        inst["attempt"] = 0
        return True

    def _timed_out(self, inst: dict[str, Any], ctx: Any, now: int) -> None:
        spec = self.flow.steps[inst["step"]]
        why = f"step {spec.name} timed out waiting for {spec.event} after {spec.timeout_s:g}s"
        self._log(
            inst,
            {
                "step": spec.name,
                "kind": "wait",
                "outcome": "timed out",
                "at": now,
                "then": spec.on_timeout,
            },
        )
        inst["_calls"].append([spec.name, "timed_out", 0.0])
        inst["waiting"] = None
        if spec.on_timeout == "compensate":
            inst["status"] = "running"
            self._give_up(inst, ctx, now, why)
        elif spec.on_timeout == "fail":
            inst["error"] = why
            self._finish(inst, ctx, now, "failed")
            return
        else:
            inst.update(status="running", step=spec.on_timeout, attempt=0)
        self._advance(inst, ctx, now)

    def _finish(
        self, inst: dict[str, Any], ctx: Any, now: int, status: str, result: Any = None
    ) -> None:
        """End the instance (once): its result to the output, remembered for ``retain``."""
        inst.update(
            status=status,
            ended=now,
            updated=now,
            waiting=None,
            result=result,
            step=None if status == "completed" else inst.get("step"),
        )
        inst.setdefault("error", None)
        ctx.timers.cancel(name=RETRY)
        ctx.timers.cancel(name=TIMEOUT)
        ctx.timers.schedule(after=self.flow.retain_s, name=FORGET)
        if self.flow.output is not None:
            summary = {
                "workflow": self.flow.name,
                "id": inst["id"],
                "status": status,
                "result": result,
                "error": inst.get("error"),
                "started": inst.get("started"),
                "ended": now,
            }
            inst["_out"].append([self.flow.output, inst["id"], summary])
        inst["_calls"].append(["end", status, 0.0])

    def _log(self, inst: dict[str, Any], entry: dict[str, Any]) -> None:
        history = inst.setdefault("history", [])
        history.append(entry)
        extra = len(history) - self.flow.history
        if extra > 0:
            del history[:extra]
            inst["dropped"] = inst.get("dropped", 0) + extra
        inst["updated"] = entry.get("at", inst.get("updated"))


def _fresh(state: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of the stored instance to change (a failed change leaves the store as it
    was), without the last change's emits and calls."""
    inst: dict[str, Any] = {} if state is None else orjson.loads(orjson.dumps(state))
    inst["_out"] = []
    inst["_calls"] = []
    return inst

"""Running a concurrent processor's calls: lanes, slots, a thread pool or an event loop.

A :class:`Scheduler` runs up to ``concurrency`` calls of one processor at once. Each job
belongs to a lane (its key, its partition, or none): a lane runs one job at a time, in the
order its jobs came. A call that returns frees its slot and its lane at once, in the thread
that ran it, and the next ready job starts there; finished jobs reach the engine's loop in
the order they finished, so a lane's outputs are written in order. A call that raised
holds its lane until the loop has decided on it (:meth:`Scheduler.retry` or
:meth:`Scheduler.release`): a key's next record never runs before a failed one's retry.

Sync functions run on a pool of ``concurrency`` threads; ``async def`` functions on one
event loop per process (uvloop where installed). A call past its ``timeout`` is reported
as :class:`~streamkit.errors.ProcessorTimeoutError`: a coroutine is cancelled, a thread
cannot be, so its slot stays taken until the function returns and its result is dropped.
"""

from __future__ import annotations

import asyncio
import heapq
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Hashable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from queue import SimpleQueue
from time import monotonic
from typing import Any

from streamkit.errors import ProcessorTimeoutError
from streamkit.processor import ProcessorSpec

__all__ = ["EventLoopThread", "Job", "Scheduler", "run_inline"]


class Job:
    """One record's call of a concurrent processor, from submission to settling.

    ``payload`` is what the engine needs to settle it (opaque here); ``args`` are the
    function's arguments; ``result``, ``error`` and ``seconds`` are the last call's.
    ``run`` counts the calls: a timed-out thread's late result carries an old one.
    ``lane_done``: its lane has moved on (its call returned, or it was settled).
    """

    __slots__ = (
        "abandoned",
        "args",
        "attempt",
        "deadline",
        "error",
        "extra",
        "lane",
        "lane_done",
        "payload",
        "released",
        "result",
        "run",
        "running",
        "seconds",
        "size",
    )

    def __init__(
        self, lane: Hashable | None, args: tuple[Any, ...], payload: Any, size: int = 0
    ) -> None:
        self.lane = lane
        self.args = args
        self.payload = payload
        self.size = size
        self.attempt = 1
        self.result: Any = None
        self.error: BaseException | None = None
        self.extra: list[tuple[str, bytes]] = []
        """Headers the middleware context around the last call added."""
        self.seconds = 0.0
        self.run = 0
        self.running = self.abandoned = self.released = self.lane_done = False
        self.deadline = 0.0


class EventLoopThread:
    """One asyncio event loop (uvloop where installed) on a thread of its own."""

    def __init__(self) -> None:
        try:
            import uvloop  # noqa: PLC0415 - optional, used where installed

            self.loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:
            self.loop = asyncio.new_event_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting: deque[Callable[[], Coroutine[Any, Any, None]]] = deque()
        self._woken = False
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="streamkit-async", daemon=True
        )
        self._thread.start()

    def start(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run the coroutine ``make()`` on the loop (from any thread). Starts asked for from
        other threads are handed over together: one wake-up of the loop for a batch."""
        if threading.get_ident() == self._thread.ident:
            self._create(make)
            return
        self._waiting.append(make)
        if not self._woken:
            self._woken = True
            self.loop.call_soon_threadsafe(self._start_waiting)

    def _start_waiting(self) -> None:
        self._woken = False
        waiting = self._waiting
        while waiting:
            self._create(waiting.popleft())

    def _create(self, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = self.loop.create_task(make())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Stop the loop (running calls are cancelled with it)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class Scheduler:
    """Runs one concurrent processor's jobs (see the module docstring).

    Finished jobs are put on ``done`` for the engine's loop, which settles each and then
    calls :meth:`release` (or :meth:`retry`).
    """

    def __init__(
        self,
        spec: ProcessorSpec,
        done: SimpleQueue[Job],
        loop: EventLoopThread | None,
        *,
        around: Callable[[Job], AbstractContextManager[list[tuple[str, bytes]]]] | None = None,
        inline: bool = False,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.spec = spec
        self.width = spec.concurrency
        self.done = done
        self._loop = loop
        self._around = around
        """The context each call runs in (middleware's, around the record), if any."""
        self._inline = inline
        self._started: deque[Job] = deque()
        """Inline: jobs that may start, run by :meth:`run_inline` in this order."""
        self._clock = clock
        self._lock = threading.Lock()
        self._lanes: dict[Hashable, deque[Job]] = {}
        self._ready: deque[Job] = deque()
        self._retries: list[tuple[float, int, Job]] = []
        self._running: dict[int, Job] = {}  # id -> job, for timeouts of threads
        self._jobs: set[Job] = set()  # submitted, not yet released
        self._seq = 0
        self.busy = 0
        """Calls running now (a timed-out thread's included, until it returns)."""
        self.pending = 0
        """Jobs submitted and not yet released: queued, running, finished or retrying."""
        self.pending_bytes = 0
        self._pool: ThreadPoolExecutor | None = None
        if not spec.is_async and not inline:
            self._pool = ThreadPoolExecutor(self.width, thread_name_prefix=f"sk-{spec.name}")

    # -- from the engine's loop -----------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Queue ``job`` behind its lane's jobs; start it when the lane and a slot allow."""
        with self._lock:
            self._jobs.add(job)
            self.pending += 1
            self.pending_bytes += job.size
            if job.lane is None:
                self._ready.append(job)
            else:
                lane = self._lanes.get(job.lane)
                if lane:
                    lane.append(job)
                    return
                self._lanes[job.lane] = deque((job,))
                self._ready.append(job)
            self._fill()

    def release(self, job: Job) -> None:
        """``job`` is settled (or abandoned): its lane's next job may start."""
        with self._lock:
            if job.released:
                return
            self._forget(job)
            self._next_in_lane(job)

    def _next_in_lane(self, job: Job) -> None:
        """Take ``job`` off its lane and let the lane's next job start (the lock is held)."""
        if job.lane is None or job.lane_done:
            return
        job.lane_done = True
        lane = self._lanes.get(job.lane)
        if not lane or lane[0] is not job:
            return
        lane.popleft()
        if lane:
            self._ready.append(lane[0])
            self._fill()
        else:
            del self._lanes[job.lane]

    def retry(self, job: Job, delay: float) -> None:
        """Call ``job`` again after ``delay`` seconds; its lane waits for it."""
        self._seq += 1
        heapq.heappush(self._retries, (self._clock() + delay, self._seq, job))

    def next_retry(self) -> float | None:
        """When the next retry is due (seconds of the clock), if one waits."""
        return self._retries[0][0] if self._retries else None

    def due(self) -> None:
        """Start the retries whose delay is over; report the threads past their timeout."""
        now = self._clock()
        if self._retries and self._retries[0][0] <= now:
            with self._lock:
                while self._retries and self._retries[0][0] <= now:
                    job = heapq.heappop(self._retries)[2]
                    if not job.abandoned:
                        self._ready.append(job)
                self._fill()
        if self._pool is not None and self.spec.timeout is not None and self._running:
            with self._lock:
                late = [j for j in self._running.values() if j.deadline <= now]
                for job in late:
                    del self._running[id(job)]
                    job.run += 1  # the thread's result, when it comes, is dropped
                    job.running = False
                    job.error = ProcessorTimeoutError(_timed_out(self.spec))
                    job.seconds = self.spec.timeout
                    self.done.put(job)

    def abandon(self, keep: Callable[[Job], bool]) -> int:
        """Drop the jobs ``keep`` refuses: queued ones never run, running ones' results are
        ignored (they are released when they come back). Returns how many were dropped."""
        with self._lock:
            gone = [j for j in self._jobs if not keep(j)]
            for job in gone:
                job.abandoned = True
                if not job.running:
                    self._forget(job)
            for name, lane in list(self._lanes.items()):
                stay = [j for j in lane if not j.abandoned or j.running]
                if len(stay) == len(lane):
                    continue
                if stay:
                    self._lanes[name] = deque(stay)
                else:
                    del self._lanes[name]
            self._ready = deque(j for j in self._ready if not j.abandoned)
        return len(gone)

    def running(self, match: Callable[[Job], bool]) -> int:
        """How many of the jobs ``match`` takes are running now."""
        with self._lock:
            return sum(1 for j in self._jobs if j.running and match(j))

    def _forget(self, job: Job) -> None:
        job.released = True
        self._jobs.discard(job)
        self.pending -= 1
        self.pending_bytes -= job.size

    def close(self) -> None:
        """Let no more calls start; threads finish what they run."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- starting and finishing calls -----------------------------------------------------
    def _fill(self) -> None:
        """Start ready jobs while slots are free (the lock is held)."""
        while self.busy < self.width and self._ready:
            job = self._ready.popleft()
            if job.abandoned:
                continue
            self.busy += 1
            job.run += 1
            job.running = True
            if self._inline:
                self._started.append(job)
            elif self._pool is not None:
                if self.spec.timeout is not None:
                    job.deadline = monotonic() + self.spec.timeout
                    self._running[id(job)] = job
                self._pool.submit(self._call, job, job.run)
            else:
                assert self._loop is not None  # noqa: S101 - async specs get a loop
                self._loop.start(partial(self._call_async, job, job.run))

    def run_started(self) -> None:
        """Inline: run, on this thread, the calls that may start, in order (and those their
        ending lets start)."""
        while self._started:
            job = self._started.popleft()
            if self.spec.is_async:
                self._call(job, job.run, partial(_awaited, self.spec, job.args))
            else:
                self._call(job, job.run)

    def _call(self, job: Job, run: int, call: Callable[[], Any] | None = None) -> None:
        started = monotonic()
        result: Any = None
        error: BaseException | None = None
        extra: list[tuple[str, bytes]] = []
        try:
            with self._context(job) as extra:
                result = self.spec.fn(*job.args) if call is None else call()
        except Exception as exc:  # noqa: BLE001 - user code; the failure policy decides
            error = exc
        self._finished(job, run, result, error, monotonic() - started, extra)

    async def _call_async(self, job: Job, run: int) -> None:
        started = monotonic()
        result: Any = None
        error: BaseException | None = None
        extra: list[tuple[str, bytes]] = []
        try:
            with self._context(job) as extra:
                call = self.spec.fn(*job.args)
                timeout = self.spec.timeout
                result = await (call if timeout is None else asyncio.wait_for(call, timeout))
        except TimeoutError:
            error = ProcessorTimeoutError(_timed_out(self.spec))
        except Exception as exc:  # noqa: BLE001 - user code; the failure policy decides
            error = exc
        self._finished(job, run, result, error, monotonic() - started, extra)

    def _context(self, job: Job) -> AbstractContextManager[list[tuple[str, bytes]]]:
        return nullcontext([]) if self._around is None else self._around(job)

    def _finished(
        self,
        job: Job,
        run: int,
        result: Any,
        error: BaseException | None,
        seconds: float,
        extra: list[tuple[str, bytes]],
    ) -> None:
        with self._lock:
            self.busy -= 1
            if run == job.run and not job.released:  # not timed out or forgotten meanwhile
                self._running.pop(id(job), None)
                job.result, job.error, job.seconds, job.extra = result, error, seconds, extra
                job.running = False
                self.done.put(job)
                if error is None and not job.abandoned:
                    # The call returned: its key's next record may be called now (its
                    # outputs are written after these, in the order the calls ended). A
                    # call that raised holds its lane until the loop decides on a retry.
                    self._next_in_lane(job)
            self._fill()


def _awaited(spec: ProcessorSpec, args: tuple[Any, ...]) -> Any:
    """An ``async def`` processor's call, awaited here (see :func:`run_inline`)."""
    return run_inline(spec.fn(*args), spec)


def _timed_out(spec: ProcessorSpec) -> str:
    return f"processor {spec.name} took longer than its timeout of {spec.timeout:g}s"


_inline = threading.local()


def run_inline(call: Any, spec: ProcessorSpec) -> Any:
    """Await a coroutine where records run one at a time (the in-memory engine, shadow
    replay), on an event loop of this thread, with the processor's timeout."""
    loop = getattr(_inline, "loop", None)
    if loop is None:
        loop = _inline.loop = asyncio.new_event_loop()
    timeout = spec.timeout

    async def bounded() -> Any:
        try:
            return await (call if timeout is None else asyncio.wait_for(call, timeout))
        except TimeoutError:
            raise ProcessorTimeoutError(_timed_out(spec)) from None

    return loop.run_until_complete(bounded())

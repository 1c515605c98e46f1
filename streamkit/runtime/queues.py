"""Queue processors: records consumed through a Kafka share group (KIP-932).

``@app.processor(input=JOBS, queue=True, retries=4)`` makes the app's workers members of
a *share group* instead of a consumer group. What that gives:

* **Workers past the partition count**: every member may receive records of every
  partition; `streamkit run --workers 12` on a 3-partition topic keeps 12 busy.
* **Per-record acknowledgement**: a record whose outputs are all written is accepted; one
  that failed is released and delivered again at once (possibly to another worker); one
  whose delivery count reached ``retries + 1`` goes to the DLQ, with the same headers as
  everywhere else, and is accepted.
* **Nothing lost to a crash**: a record a dead worker had acquired returns to the group
  when its acquisition lock expires (``share.record.lock.duration.ms``, 30 s by default).

What it gives up, and what is therefore refused at start-up (:func:`check_queues`):

* **Order**: records of one key may run at once on two workers, and a released record
  comes back after later ones. Nothing ordered or keyed by state can run on a queue: no
  aggregates, windows, gathers, joins, tables, dedupe or timers.
* **Exactly-once**: acknowledgements are not part of Kafka transactions.
* **Retry topics and delays**: a redelivery is the retry, and it comes at once.
* A queue app holds only queue processors (one group per app); put the others in an app
  of their own.

A record that crashes its worker on every delivery is archived by the broker after its
``group.share.delivery.count.limit`` (5) deliveries without reaching the DLQ: the worker
checks at start-up that ``retries + 1`` stays within that limit.
"""

from __future__ import annotations

from streamkit.app import App
from streamkit.errors import ConfigError

__all__ = ["check_queues", "is_queue_app"]


def is_queue_app(app: App) -> bool:
    """Whether the app's processors consume through a share group."""
    return any(spec.queue for spec in app.processors)


def check_queues(app: App) -> None:
    """Refuse, with one clear line, what a queue processor cannot keep its promises with."""
    queues = [spec for spec in app.processors if spec.queue]
    if not queues:
        return
    names = ", ".join(spec.name for spec in queues)
    others = [spec.name for spec in app.processors if not spec.queue]
    stateful = [
        *(f"aggregate {a.name}" for a in app.aggregates),
        *(f"window {w.name}" for w in app.windows),
        *(f"table {t.name}" for t in app.tables),
    ]
    if others or stateful:
        raise ConfigError(
            f"app {app.name} mixes queue processors ({names}) with "
            f"{', '.join([*others, *stateful])}: a queue app is one share group and holds "
            "only queue processors; declare the others in an App of their own"
        )
    if app.guarantee == "exactly_once":
        raise ConfigError(
            f"app {app.name} is exactly_once, which queue processors ({names}) cannot be: "
            "a share group's acknowledgements are not part of a Kafka transaction"
        )
    for spec in queues:
        refused = [
            what
            for what, present in (
                ("retry_topics= (a redelivery is the retry)", bool(spec.retry_topics)),
                ("dedupe= (it keeps per-partition state)", spec.dedupe is not None),
                ("on_timer= (timers live in per-partition state)", spec.on_timer is not None),
                ("tables= (tables are per-partition state)", bool(spec.tables)),
                ("concurrency or async (run more workers instead)", spec.concurrent),
            )
            if present
        ]
        if refused:
            raise ConfigError(
                f"processor {spec.name} is a queue processor and cannot take {'; '.join(refused)}"
            )

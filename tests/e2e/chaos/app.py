"""The app under fault: relays every event with its source coordinates, dead-letters the
poison ones, filters the ones marked ``drop`` and (stateful shape) folds a per-key tally.

Env: CHAOS_GROUP, CHAOS_INPUT, CHAOS_OUTPUT, CHAOS_PARTITIONS; CHAOS_EOS=1 runs it exactly
once; CHAOS_STATEFUL=1 adds the tally aggregate and takes the Context (the general path);
without it the relay has the fast path's shape (one processor, one output, no context).
"""

import os
from typing import Any

from streamkit import App, Context

GROUP = os.environ.get("CHAOS_GROUP", "chaos")
INPUT = os.environ.get("CHAOS_INPUT", "chaos-in")
OUTPUT = os.environ.get("CHAOS_OUTPUT", "chaos-out")
PARTITIONS = int(os.environ.get("CHAOS_PARTITIONS", "6"))
STATEFUL = os.environ.get("CHAOS_STATEFUL") == "1"

app = App(
    GROUP, guarantee="exactly_once" if os.environ.get("CHAOS_EOS") == "1" else "at_least_once"
)
app.topic(INPUT, partitions=PARTITIONS, keyed_by="key")
app.topic(OUTPUT, partitions=PARTITIONS)


class PoisonError(ValueError):
    """An event no retry can fix: dead-lettered at once."""


def relayed(event: dict[str, Any], source: list[int] | None) -> dict[str, Any] | None:
    """The output for ``event``; None filters it; a poison event raises."""
    if event.get("poison"):
        raise PoisonError(f"event {event['id']} is poison")
    if event.get("drop"):
        return None
    out = {"id": event["id"], "key": event["key"], "seq": event["seq"]}
    if source is not None:
        out["src"] = source
    return out


def tally(state: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """Per key: how many events, and the last sequence number folded."""
    state = state or {"count": 0, "last": -1}
    return {"count": state["count"] + 1, "last": event["seq"]}


if STATEFUL:

    @app.processor(input=INPUT, output=OUTPUT, name="relay")
    def relay_with_source(event: dict[str, Any], ctx: Context) -> dict[str, Any] | None:
        """The relay, with the input's partition and offset in the output."""
        return relayed(event, [ctx.partition, ctx.offset])

    app.aggregate(input=INPUT, store="tally", key="key")(tally)

else:

    @app.processor(input=INPUT, output=OUTPUT, name="relay")
    def relay(event: dict[str, Any]) -> dict[str, Any] | None:
        """The relay in the fast path's shape."""
        return relayed(event, None)

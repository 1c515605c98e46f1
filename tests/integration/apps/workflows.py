"""A test app of a durable workflow: reserve -> approval (some orders) -> charge -> ship,
with a compensation for reserve and charge; every side effect is an emit to the effects
topic, so a test can count them.

Order ``n`` (its id ``w<n>``):

* ``n % 7 == 0`` waits for an approval (``WF_WAIT``, then compensated), which may be a
  rejection (``ok`` false: compensated);
* ``n % 5 == 0`` has its card declined in ``charge`` (compensated);
* ``n % 11 == 0`` fails ``charge``'s first attempt (retried after 0.2 s, on a timer);
* ``n % 13 == 0`` cannot be shipped (charge refunded, then stock released).

WF_TAG suffixes every topic and the group; WF_EOS=1 runs it exactly once.
"""

import os
from typing import Any

from streamkit import App, RetryPolicy, StepContext, StepFailed

TAG = os.environ.get("WF_TAG", "t")
PARTITIONS = 3


def name(topic: str) -> str:
    """A topic's name in this run."""
    return f"wf-{topic}-{TAG}"


GUARANTEE = "exactly_once" if os.environ.get("WF_EOS") == "1" else "at_least_once"
app = App(f"wf-{TAG}", guarantee=GUARANTEE)
ORDERS = app.topic(name("orders"), partitions=PARTITIONS)
APPROVALS = app.topic(name("approvals"), partitions=2)
EFFECTS = app.topic(name("effects"), partitions=PARTITIONS)
DONE = app.topic(name("done"), partitions=PARTITIONS)

flow = app.workflow(
    "orders",
    start=ORDERS,
    id="id",
    events=[APPROVALS],
    output=DONE,
    outputs=[EFFECTS],
    retries=RetryPolicy(attempts=3, backoff=0.2, jitter=0),
)


def _effect(ctx: StepContext, effect: str) -> None:
    ctx.emit(EFFECTS, {"id": ctx.id, "effect": effect, "attempt": ctx.attempt})


@flow.step(compensate=lambda order, ctx: _effect(ctx, "release"))
def reserve(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Reserve stock."""
    _effect(ctx, "reserve")
    return order


@flow.wait(APPROVALS, timeout=os.environ.get("WF_WAIT", "8s"), when=lambda o: o["n"] % 7 == 0)
def approval(order: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """Some orders wait for an approval (or a rejection)."""
    if not answer.get("ok", True):
        raise StepFailed(f"rejected by {answer['by']}")
    return {**order, "approved_by": answer["by"]}


@flow.step(compensate=lambda order, ctx: _effect(ctx, "refund"))
def charge(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Charge the card: declined for some, a transient error first for others."""
    if order["n"] % 5 == 0:
        raise StepFailed("card declined")
    if order["n"] % 11 == 0 and ctx.attempt == 1:
        raise ConnectionError("payment service busy")
    _effect(ctx, "charge")
    return order


@flow.step()
def ship(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    """Ship it (not to an unknown address)."""
    if order["n"] % 13 == 0:
        raise StepFailed("address unknown")
    _effect(ctx, "ship")
    return {"id": order["id"], "shipped": True}

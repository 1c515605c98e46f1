"""Deterministic OrderPlaced events for the demo, the compose file and the tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL")
CHANNELS = ("web", "mobile", "store")
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def orders(count: int, *, seed: int = 7, invalid_every: int = 10) -> Iterator[dict[str, Any]]:
    """``count`` orders; every ``invalid_every``-th one has no lines (to be rejected)."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not cryptography
    for n in range(count):
        line_count = (
            0 if invalid_every and n % invalid_every == invalid_every - 1 else rng.randint(1, 4)
        )
        yield {
            "order_id": f"o-{seed}-{n}",
            "customer_id": f"c-{rng.randint(1, 50)}",
            "country": rng.choice(COUNTRIES),
            "lines": [
                {
                    "sku": f"sku-{rng.randint(1, 200)}",
                    "quantity": rng.randint(1, 5),
                    "unit_price_cents": rng.randint(199, 19_999),
                }
                for _ in range(line_count)
            ],
            "placed_at": EPOCH_MS + n * 1000,
            "channel": rng.choice(CHANNELS),
        }


def customers(count: int = 50, *, seed: int = 7) -> Iterator[dict[str, Any]]:
    """The CustomerProfile of customers ``c-1`` .. ``c-<count>`` (the ones orders name);
    about one in ten is risky."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not cryptography
    for n in range(1, count + 1):
        yield {
            "customer_id": f"c-{n}",
            "tier": rng.choice(("bronze", "silver", "gold")),
            "risk": rng.randint(80, 100) if n % 10 == 3 else rng.randint(0, 60),
            "country": rng.choice(COUNTRIES),
        }


def main() -> None:
    """``python -m processors.generator``: produce orders at a steady rate (for compose)."""
    import argparse  # noqa: PLC0415 - only the command line needs these
    import time  # noqa: PLC0415

    from processors.orders import PLACED, app  # noqa: PLC0415
    from streamkit import AppClient  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--events", type=int, default=0, help="0 = forever")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second")
    args = parser.parse_args()
    sent, batch, seed = 0, max(1, int(args.rate // 10)), int(time.time())
    with AppClient(app) as client:
        while not args.events or sent < args.events:
            for order in orders(batch, seed=seed + sent):
                client.send(PLACED.name, order, key=order["customer_id"])
            sent += batch
            client.flush()
            print(f"generated {sent} orders", flush=True)
            time.sleep(batch / args.rate)


if __name__ == "__main__":
    main()


PAGES = ("home", "pricing", "docs", "blog", "signup", "about", "careers", "status")


def page_views(
    minutes: int, per_minute: int, *, start_ms: int, spike: tuple[str, int] | None, seed: int = 7
) -> Iterator[dict[str, Any]]:
    """Page views over ``minutes`` of event time from ``start_ms``, about ``per_minute``
    per page per minute, in time order; ``spike=(page, minute)`` makes that page's minute
    five times busier."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not cryptography
    views: list[dict[str, Any]] = []
    for minute in range(minutes):
        for page in PAGES:
            count = per_minute + rng.randint(-per_minute // 5, per_minute // 5)
            if spike == (page, minute):
                count *= 5
            for _ in range(count):
                at = start_ms + minute * 60_000 + rng.randint(0, 59_999)
                views.append({"page": page, "visitor": f"v-{rng.randint(1, 500)}", "viewed_at": at})
    yield from sorted(views, key=lambda v: int(v["viewed_at"]))

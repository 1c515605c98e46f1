"""The work every implementation does per record, and the shared dataset.

Decode a BenchEvent (Avro single-object encoding), map it to a BenchResult, encode it
(single-object encoding), produce it with the same key. The map is deliberately small:
the benchmark measures the framework, not the function.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL", "SE", "AT")


def transform(event: dict[str, Any]) -> dict[str, Any]:
    """BenchEvent -> BenchResult."""
    return {
        "id": event["id"],
        "user": event["user"],
        "country": event["country"],
        "amount_cents": int(event["amount"] * 100),
        "ts": event["ts"],
        "flagged": event["amount"] > 500,
    }


def event(n: int, rng: random.Random, ts: int | None = None) -> dict[str, Any]:
    """One BenchEvent (~200 bytes encoded)."""
    return {
        "id": n,
        "user": f"user-{rng.randint(1, 100_000):06d}",
        "country": rng.choice(COUNTRIES),
        "amount": round(rng.uniform(1, 1000), 2),
        "ts": int(time.time() * 1000) if ts is None else ts,
        "tags": [f"tag-{rng.randint(1, 50):02d}" for _ in range(3)],
        "note": "x" * rng.randint(90, 110),
    }

"""The clickstream example: page views counted per page per minute of event time, and a
flag when a page's minute is far above its usual minute (an anomaly).

    clicks.views ──per_minute──▶ clicks.per-minute ──baseline──▶ clicks.page-stats
       (window: 1 min, grace 10 s,                    (aggregate)          │
        closes after 5 s idle too)                                   alert ▼
                                                               clicks.anomalies

Run it: ``streamkit topics create processors.clicks`` then
``streamkit run processors.clicks``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamkit import App

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
SPIKE = 3.0  # a minute this many times the page's usual one is an anomaly
WARM_UP = 3  # minutes of a page seen before its usual minute is trusted

app = App("clicks", schemas=SCHEMAS)

VIEWS = app.topic("clicks.views", value="PageView", partitions=4, keyed_by="page")
PER_MINUTE = app.topic("clicks.per-minute", value="PageCount", partitions=4, keyed_by="key")
STATS = app.topic("clicks.page-stats", value="json", partitions=4)
ANOMALIES = app.topic("clicks.anomalies", value="PageAnomaly", partitions=4)


@app.window(
    input=VIEWS,
    store="views-per-minute",
    key="page",
    size="1m",
    grace="10s",
    close_idle="5s",
    timestamp="viewed_at",
    output=PER_MINUTE,
)
def per_minute(views: int | None, view: dict[str, Any]) -> int:
    """Views of a page per minute of event time (one final count per minute)."""
    return (views or 0) + 1


@app.aggregate(input=PER_MINUTE, store="page-baseline", key="key", output=STATS)
def baseline(stats: dict[str, Any] | None, minute: dict[str, Any]) -> dict[str, Any]:
    """A page's usual minute (its average so far), and whether this minute is far above."""
    stats = stats or {"minutes": 0, "views": 0}
    usual = stats["views"] / stats["minutes"] if stats["minutes"] else 0.0
    views = minute["value"]
    return {
        "page": minute["key"],
        "minute": int(minute["start"].timestamp() * 1000),
        "last": views,
        "usual": usual,
        "anomaly": stats["minutes"] >= WARM_UP and views > SPIKE * usual,
        "minutes": stats["minutes"] + 1,
        "views": stats["views"] + views,
    }


@app.processor(input=STATS, output=ANOMALIES)
def alert(stats: dict[str, Any]) -> dict[str, Any] | None:
    """Only the anomalies go on: a filter."""
    if not stats["anomaly"]:
        return None
    return {
        "page": stats["page"],
        "minute": stats["minute"],
        "views": stats["last"],
        "usual": stats["usual"],
    }

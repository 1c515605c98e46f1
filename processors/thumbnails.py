"""The thumbnails example: a work queue on a Kafka share group.

    thumbnails.requested ──render──▶ thumbnails.rendered

Rendering is slow and any worker can do any job, in any order: a queue, not a stream.
``queue=True`` makes the workers members of a share group, so more workers than the
topic has partitions all get jobs, each job is acknowledged on its own, and a job that
keeps failing is dead-lettered on its third delivery (``retries=2``)::

    streamkit topics create processors.thumbnails
    streamkit run processors.thumbnails --workers 6      # 6 workers, 2 partitions
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from streamkit import App

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
RENDER_SECONDS = float(os.environ.get("THUMBNAILS_RENDER_MS", "20")) / 1000
MAX_SIDE = 8192

app = App("thumbnails", schemas=SCHEMAS)

REQUESTED = app.topic("thumbnails.requested", value="ThumbnailRequested", partitions=2)
RENDERED = app.topic("thumbnails.rendered", value="ThumbnailRendered", partitions=2)


@app.processor(input=REQUESTED, output=RENDERED, queue=True, retries=2)
def render(job: dict[str, Any]) -> dict[str, Any]:
    """Render ``job``'s thumbnail (simulated: it takes ``THUMBNAILS_RENDER_MS``)."""
    if not 0 < job["width"] <= MAX_SIDE or not 0 < job["height"] <= MAX_SIDE:
        raise ValueError(f"image {job['image_id']} is {job['width']}x{job['height']}")
    time.sleep(RENDER_SECONDS)
    return {
        "image_id": job["image_id"],
        "url": f"https://thumbs.invalid/{job['image_id']}.webp",
        "bytes": job["width"] * job["height"] // 40,
    }

"""`make demo-elastic` in short: a burst scales the receipts workers up and back to zero,
a second one wakes them, and every invoice gets its receipt."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_elastic_demo_scales_up_down_to_zero_and_back_and_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    png = tmp_path / "elastic.png"
    done = subprocess.run(
        [sys.executable, "-m", "processors.demo_elastic", "--burst", "1500",
         "--second-burst", "150", "--cooldown", "3", "--png", str(png)],
        env={**os.environ, "STREAMKIT_BOOTSTRAP_SERVERS": kafka_bootstrap,
             "PYTHONPATH": str(ROOT)},
        cwd=ROOT, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "1,650 invoices -> 1,650 receipts (0 missing" in out
    assert "scale up: lag" in out
    assert out.count("-> 0 worker(s): scale down") >= 2  # after each burst
    assert f"plot: {png}" in out
    assert png.stat().st_size > 10_000

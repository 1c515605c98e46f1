"""`make demo-elastic` in short: a burst scales the receipts workers up and back to zero,
a second one wakes them, and every invoice gets its receipt."""

from pathlib import Path

from tests.integration.helpers import run_demo


def test_the_elastic_demo_scales_up_down_to_zero_and_back_and_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    png = tmp_path / "elastic.png"
    out = run_demo(
        "processors.demo_elastic",
        kafka_bootstrap,
        "--burst",
        "1500",
        "--second-burst",
        "150",
        "--cooldown",
        "3",
        "--png",
        str(png),
    )
    assert "1,650 invoices -> 1,650 receipts (0 missing" in out
    assert "scale up: lag" in out
    assert out.count("-> 0 worker(s): scale down") >= 2  # after each burst
    assert f"plot: {png}" in out
    assert png.stat().st_size > 10_000

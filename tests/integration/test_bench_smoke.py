"""The benchmark harness on a tiny dataset, so that it cannot rot (no timing assertions)."""

from pathlib import Path

import pytest

from benchmarks import aggregates, concurrency, filters, harness, restore


def test_the_harness_runs_raw_and_streamkit_and_writes_a_report(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMKIT_BOOTSTRAP_SERVERS", kafka_bootstrap)
    code = harness.main(
        [
            "--records",
            "2000",
            "--runs",
            "1",
            "--variants",
            "raw,streamkit-1",
            "--latency-rate",
            "500",
            "--latency-seconds",
            "1",
            "--latency-warmup",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    table = (tmp_path / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| (")]
    assert [row.split("|")[1].strip() for row in rows] == [
        "(a) raw confluent-kafka loop",
        "(b) streamkit, 1 worker",
    ]
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")]
        median = cells[2].split("**")[1]  # min / **median** / max
        assert float(median.replace(",", "")) > 0
        assert float(cells[4].split("**")[1]) > 0  # CPU seconds
        assert "nan" not in cells[6]  # a latency was measured
        assert cells[6] != "-"
    assert "- librdkafka (streamkit, raw loop): " in table  # versions recorded


def test_the_io_bound_benchmark_runs_streamkit_and_writes_a_report(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMKIT_BOOTSTRAP_SERVERS", kafka_bootstrap)
    code = concurrency.main(
        [
            "--records",
            "2000",
            "--keys",
            "500",
            "--runs",
            "1",
            "--peers",
            "streamkit",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    table = (tmp_path / "concurrency.md").read_text()
    (row,) = [line for line in table.splitlines() if line.startswith("| streamkit")]
    assert float(row.split("|")[2].replace(",", "")) > 0


def test_the_filter_benchmark_runs_both_filters_and_writes_a_report(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMKIT_BOOTSTRAP_SERVERS", kafka_bootstrap)
    assert filters.main(["--records", "3000", "--runs", "1", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "filters.md").read_text()
    rows = [
        line
        for line in table.splitlines()
        if line.startswith("| `where") or line.startswith("| the same")
    ]
    assert len(rows) == 2
    assert all(float(row.split("|")[2].replace(",", "")) > 0 for row in rows)


def test_the_aggregate_and_restore_benchmarks_run_both_stores_and_write_reports(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMKIT_BOOTSTRAP_SERVERS", kafka_bootstrap)
    args = ["--records", "3000", "--runs", "1", "--out", str(tmp_path)]
    assert aggregates.main([*args, "--keys", "100"]) == 0
    table = (tmp_path / "aggregates.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 100 |")]
    assert sorted(row.split("|")[2].strip() for row in rows) == ["memory", "rocksdb"]
    assert restore.main([*args, "--keys", "50"]) == 0
    table = (tmp_path / "restore.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| streamkit, ")]
    assert len(rows) == 2
    assert all(float(row.split("|")[2].split()[0].replace(",", "")) > 0 for row in rows)

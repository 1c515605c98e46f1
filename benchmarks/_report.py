"""The peer benchmark's report: the table (min, median and max of every measure), every
run, the rounds' orders, and the versions of everything that ran."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.harness import Result

__all__ = ["report", "versions"]

ROOT = Path(__file__).resolve().parent.parent
_VENVS = {"faust": ".venv-bench-faust", "quix": ".venv-bench-quix"}
_PACKAGES = {
    "faust": ["faust-streaming", "aiokafka", "uvloop", "fastavro"],
    "quix": ["quixstreams", "confluent-kafka", "fastavro"],
}


def versions(bootstrap: str) -> dict[str, str]:
    """What ran: Python, streamkit's client and codec, each peer's packages, the JDK,
    Kafka Streams (its pom) and the broker."""
    import confluent_kafka  # noqa: PLC0415

    found = {
        "Python": platform.python_version(),
        "confluent-kafka (streamkit, raw loop)": importlib.metadata.version("confluent-kafka"),
        "librdkafka (streamkit, raw loop)": confluent_kafka.libversion()[0],
        "fastavro (streamkit, raw loop)": importlib.metadata.version("fastavro"),
    }
    try:
        found["cavro (streamkit)"] = importlib.metadata.version("cavro")
    except importlib.metadata.PackageNotFoundError:
        found["cavro (streamkit)"] = "not installed"
    for peer, venv in _VENVS.items():
        python = ROOT / venv / "bin" / "python"
        if not python.exists():
            continue
        script = (
            "import importlib.metadata as m\n"
            f"for p in {_PACKAGES[peer]!r}:\n"
            "    print(p, m.version(p))"
        )
        out = subprocess.run(
            [str(python), "-c", script], capture_output=True, text=True, check=False, timeout=60
        ).stdout
        for line in out.splitlines():
            package, _, version = line.partition(" ")
            found[f"{package} ({peer})"] = version
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    found["JDK"] = (java.stderr.splitlines() or ["?"])[0]
    pom = (ROOT / "benchmarks/kstreams/pom.xml").read_text()
    streams = re.search(r"<artifactId>kafka-streams</artifactId>\s*<version>([^<]+)", pom)
    found["Kafka Streams"] = streams.group(1) if streams else "?"
    found["broker"] = f"Apache Kafka ({bootstrap}), KRaft, one node"
    return found


def _spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    ordered = sorted(values)
    if not ordered:
        return "-"
    middle = ordered[(len(ordered) - 1) // 2]
    return f"{fmt.format(ordered[0])} / **{fmt.format(middle)}** / {fmt.format(ordered[-1])}"


def report(
    results: list[Result],
    labels: dict[str, str],
    out: Path,
    *,
    records: int,
    rate: int,
    seed: int,
    rounds: list[list[str]],
    versions: dict[str, str],
    partitions: int,
) -> Path:
    """results.md (and chart.png when matplotlib is installed) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    raw = next((r for r in results if r.variant == "raw"), None)
    ceiling = raw.median(raw.rates) if raw and raw.rates else 0.0
    lines = [
        "# streamkit peer benchmark",
        "",
        f"{records:,} records (~200-byte Avro, single-object encoding), {partitions} "
        f"partitions, {len(rounds)} rounds, each running every implementation once in a "
        f"random order (seed {seed}). Throughput over the steady part of each run (the "
        "first 20% of every output partition left out as warm-up, for everyone); every "
        "run's output read back whole, counted, checked for duplicates and a sample "
        "decoded and compared. Latency at "
        f"{rate:,} records/s, after a discarded warm-up pass per implementation.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "",
        "min / **median** / max of the runs:",
        "",
        "| implementation | records/s | median vs (a) | CPU s per run | RSS MB, all "
        "processes | p50 / p99 ms | duplicates |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        median = r.median(r.rates)
        ratio = f"{median / ceiling:.2f}x" if ceiling else "-"
        latency = "-"
        if r.latency_runs:
            p50 = r.median([a for a, _ in r.latency_runs])
            p99 = r.median([b for _, b in r.latency_runs])
            latency = f"{p50:.0f} / {p99:.0f}"
        lines.append(
            f"| {labels.get(r.variant, r.variant)} | {_spread(r.rates)} | {ratio} | "
            f"{_spread(r.cpu_s, '{:.1f}')} | {_spread(r.rss_mb)} ({r.processes} proc.) | "
            f"{latency} | {r.duplicates} |"
        )
    lines += ["", "Every run (records/s, in the order they ran):", ""]
    lines += [f"- {r.variant}: " + ", ".join(f"{x:,.0f}" for x in r.rates) for r in results]
    lines += ["", "Rounds (order of the runs):", ""]
    lines += [f"{i + 1}. " + ", ".join(names) for i, names in enumerate(rounds)]
    timed = [r for r in results if r.latency_runs]
    if timed:
        lines += ["", "Every latency pass (p50 / p99 ms):", ""]
        lines += [
            f"- {r.variant}: " + ", ".join(f"{a:.0f} / {b:.0f}" for a, b in r.latency_runs)
            for r in timed
        ]
    lines += ["", "Versions:", ""] + [f"- {name}: {value}" for name, value in versions.items()]
    path = out / "results.md"
    path.write_text("\n".join(lines) + "\n")
    _chart(results, labels, out)
    return path


def _chart(results: list[Any], labels: dict[str, str], out: Path) -> None:
    try:
        import matplotlib  # noqa: PLC0415 - optional, for the chart

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    names = [labels.get(r.variant, r.variant) for r in results]
    medians = [r.median(r.rates) for r in results]
    low = [m - min(r.rates) for m, r in zip(medians, results, strict=True)]
    high = [max(r.rates) - m for m, r in zip(medians, results, strict=True)]
    ax.barh(names, medians, xerr=[low, high], capsize=3)
    ax.set_xlabel("records/s, median with min-max (higher is better)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out / "chart.png", dpi=120)

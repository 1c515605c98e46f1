"""Workflows seen from outside the workers: their instances (from the workflow store's
changelog) and their step graph (Mermaid text, or an image drawn by Graphviz)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streamkit.app import App
from streamkit.errors import ConfigError
from streamkit.ops.state import read_changelog
from streamkit.state.stores import decode_entry
from streamkit.state.workflow import END, Workflow
from streamkit.topology import Topology

__all__ = ["find_workflow", "instances", "mermaid", "render", "to_dot"]

_ORDER = (
    "id",
    "status",
    "step",
    "attempt",
    "error",
    "result",
    "started",
    "updated",
    "ended",
    "duplicates",
    "waiting",
    "data",
    "done",
    "buffer",
    "dropped",
)


def find_workflow(app: App, name: str | None) -> Workflow:
    """The app's workflow called ``name`` (or its only one)."""
    flows = {flow.name: flow for flow in app.workflows}
    if not flows:
        raise ConfigError(f"app {app.name} declares no workflow")
    if name is None:
        if len(flows) > 1:
            raise ConfigError(
                f"app {app.name} has {len(flows)} workflows "
                f"({', '.join(flows)}): name one with --workflow"
            )
        return next(iter(flows.values()))
    if name not in flows:
        raise ConfigError(
            f"app {app.name} has no workflow {name!r} (workflows: {', '.join(flows)})"
        )
    return flows[name]


def instances(
    app: App, config: Mapping[str, Any], flow: Workflow, status: str | None = None
) -> list[dict[str, Any]]:
    """Every instance of ``flow`` its changelog holds now (with ``status``, when given),
    by last update; without what only the workers need."""
    store = next(a.store for a in app.aggregates if a.name == flow.name)
    latest: dict[str, bytes | None] = {}
    for msg in read_changelog(Topology(app).changelog(store), config):
        latest[(msg.key() or b"").decode("utf-8", "replace")] = msg.value()
    found = []
    for raw in latest.values():
        if raw is None:
            continue
        stored = decode_entry(raw).state
        inst = {k: stored[k] for k in _ORDER if k in stored}
        inst.update((k, v) for k, v in stored.items() if not k.startswith("_"))
        if status is None or inst.get("status") == status:
            found.append(inst)
    return sorted(found, key=lambda i: (i.get("updated") or 0, str(i.get("id"))))


def _node(name: str) -> str:
    return "[*]" if name == END else name


def mermaid(flow: Workflow) -> str:
    """The step graph as a Mermaid state diagram (waits say what they wait for; dashed
    lines are compensations, run in reverse order once a step gives up)."""
    lines = ["stateDiagram-v2", f"    %% workflow {flow.name}: started by {flow.start}"]
    for name, spec in flow.steps.items():
        if spec.event is not None:
            lines.append(f"    {name}: {name} (waits for {spec.event}, {spec.timeout_s:g}s)")
    for source, target, label in flow.edges():
        to = {"compensate": "compensating", "fail": "failed"}.get(target, _node(target))
        lines.append(f"    {source} --> {to}" + (f": {label}" if label else ""))
    undo = [s for s in flow.steps if flow.compensation_of(s) is not None]
    if undo:
        lines.append(f"    note right of compensating: undoes {', '.join(reversed(undo))}")
        lines.append("    compensating --> [*]")
    if any(target == "fail" for _, target, _ in flow.edges()):
        lines.append("    failed --> [*]")
    return "\n".join(lines) + "\n"


def to_dot(flow: Workflow) -> str:
    """The step graph in Graphviz's DOT language."""
    lines = [
        f'digraph "{flow.name}" {{',
        "    rankdir=LR;",
        "    node [shape=box, style=rounded];",
        '    start [shape=circle, label="", width=0.2, style=filled];',
        '    end [shape=doublecircle, label="", width=0.2, style=filled];',
    ]
    for name, spec in flow.steps.items():
        label = name if spec.event is None else f"{name}\\n(waits for {spec.event})"
        lines.append(f'    "{name}" [label="{label}"];')
    for source, target, label in flow.edges():
        a = "start" if source == "[*]" else f'"{source}"'
        b = "end" if target in {"[*]", END} else f'"{target}"'
        lines.append(f"    {a} -> {b}" + (f' [label="{label}"];' if label else ";"))
    undo = [s for s in flow.steps if flow.compensation_of(s) is not None]
    if undo:
        lines.append(
            f'    "compensate" [label="compensate\\n(undo {", ".join(reversed(undo))})", '
            'style="rounded,dashed"];'
        )
        lines.append('    "compensate" -> end [style=dashed];')
    if any(target == "fail" for _, target, _ in flow.edges()):
        lines.append('    "fail" -> end;')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(flow: Workflow, path: Path) -> None:
    """Draw the graph to ``path`` (its suffix names the format: png, svg, pdf) with
    Graphviz's ``dot``."""
    dot = shutil.which("dot")
    if dot is None:
        raise ConfigError(
            "drawing an image needs Graphviz's dot on PATH (apt install "
            "graphviz); the Mermaid text renders wherever Mermaid does"
        )
    fmt = path.suffix.lstrip(".") or "png"
    done = subprocess.run(
        [dot, f"-T{fmt}", "-o", str(path)],
        input=to_dot(flow).encode(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise ConfigError(f"dot could not draw {path}: {done.stderr.decode().strip()}")

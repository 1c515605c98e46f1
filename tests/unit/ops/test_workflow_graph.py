"""The step graph of a workflow: Mermaid text and DOT name every step and transition;
an image needs Graphviz, and says so in one line when it is not there."""

import shutil
from pathlib import Path

import pytest

from processors import fulfilment
from streamkit import ConfigError
from streamkit.ops.workflows import find_workflow, mermaid, render, to_dot


def test_mermaid_names_every_step_wait_timeout_and_compensation() -> None:
    text = mermaid(fulfilment.flow)
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    for edge in (
        "[*] --> reserve_stock",
        "reserve_stock --> approval",
        "approval --> charge_payment: fulfilment.approvals",
        "approval --> charge_payment: skipped",
        "approval --> escalate: timeout",
        "escalate --> manager_approval",
        "manager_approval --> compensating: timeout",
        "charge_payment --> ship",
        "ship --> [*]",
        "compensating --> [*]",
    ):
        assert f"    {edge}" in lines
    assert "    note right of compensating: undoes reserve_stock" in lines


def test_dot_has_the_same_edges() -> None:
    text = to_dot(fulfilment.flow)
    assert text.startswith('digraph "fulfilment" {')
    assert '"approval" -> "escalate" [label="timeout"];' in text
    assert '"ship" -> end;' in text
    assert '"compensate" [label="compensate\\n(undo reserve_stock)"' in text


def test_an_image_is_drawn_with_graphviz_or_refused_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "flow.svg"
    if shutil.which("dot") is None:
        with pytest.raises(ConfigError, match="needs Graphviz's dot on PATH"):
            render(fulfilment.flow, target)
        return
    render(fulfilment.flow, target)
    assert b"reserve_stock" in target.read_bytes()


def test_the_workflow_is_found_by_name_or_as_the_only_one() -> None:
    assert find_workflow(fulfilment.app, None) is fulfilment.flow
    with pytest.raises(ConfigError, match="has no workflow 'nope' \\(workflows: fulfilment\\)"):
        find_workflow(fulfilment.app, "nope")

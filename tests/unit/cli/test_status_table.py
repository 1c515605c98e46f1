"""`streamkit status` never cuts a topic or member name: two long names that differ at
their end stay told apart on an 80-column terminal."""

from rich.console import Console

from streamkit.cli.status import _render
from streamkit.ops.status import GroupStatus, PartitionStatus


def test_long_topic_names_wrap_instead_of_being_cut() -> None:
    prefix = "orders.payments.settlement-reconciliation-events-"
    topics = [f"{prefix}europe-west", f"{prefix}europe-east"]
    status = GroupStatus(
        group="g",
        state="STABLE",
        members={"worker-1@host": [(t, 0) for t in topics]},
        partitions=[PartitionStatus(t, 0, "worker-1@host", 5, 9) for t in topics],
    )
    console = Console(width=80, record=True)
    console.print(_render(status))
    text = console.export_text()
    assert "…" not in text  # rich cuts a cell with an ellipsis; these wrap instead
    assert text.count("west[0]") == 1  # the assignment, to the end of each name
    assert text.count("east[0]") == 1
    assert text.count("-west ") == 1  # the lag table's topic column, to the end too
    assert text.count("-east ") == 1

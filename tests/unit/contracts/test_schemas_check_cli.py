"""`streamkit schemas check --against REF` on a real git repository."""

import os
import subprocess
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streamkit.cli.main import cli

FIELDS: list[dict[str, object]] = [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": "int"},
]
ORDER = {"type": "record", "name": "Order", "namespace": "shop", "fields": FIELDS}


def _git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "Order.avsc").write_bytes(orjson.dumps(ORDER))
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "v1")
    return schemas


def _check(schemas: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["schemas", "check", "--schemas-dir", str(schemas), "--against", "main", *args]
    )
    error = "" if result.exception is None else f"error: {result.exception}\n"
    return result.exit_code, result.output + error


def _write(schemas: Path, fields: list[dict[str, object]]) -> None:
    (schemas / "Order.avsc").write_bytes(orjson.dumps({**ORDER, "fields": fields}))


def test_adding_a_field_with_a_default_passes_backward(repo: Path) -> None:
    _write(repo, [*FIELDS, {"name": "note", "type": "string", "default": ""}])
    code, output = _check(repo)
    assert code == 0, output
    assert "ok       shop.Order (vs git ref)" in output


def test_adding_a_field_without_a_default_is_refused_under_backward(repo: Path) -> None:
    _write(repo, [*FIELDS, {"name": "note", "type": "string"}])
    code, output = _check(repo)
    assert code == 1
    assert "BROKEN   shop.Order (vs git ref)" in output
    assert "Order.note: the reader has this field without a default" in output
    assert "1 contract(s) incompatible under BACKWARD" in output
    assert _check(repo, "--level", "FORWARD")[0] == 0


def test_removing_a_field_without_a_default_is_refused_under_forward(repo: Path) -> None:
    _write(repo, [{"name": "id", "type": "string"}])
    assert _check(repo)[0] == 0  # BACKWARD: the new reader ignores the old field
    code, output = _check(repo, "--level", "FORWARD")
    assert code == 1
    assert "FORWARD (the old schema reads new data): Order.amount" in output


def test_an_unknown_ref_is_one_clear_error(repo: Path) -> None:
    result = CliRunner().invoke(
        cli, ["schemas", "check", "--schemas-dir", str(repo), "--against", "nope"]
    )
    assert result.exit_code == 1
    assert "git ref 'nope' not found" in str(result.exception or result.output)


def test_register_puts_each_avro_topic_contract_under_its_subject(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMKIT_SCHEMA_REGISTRY_URL", "mock://register-test")
    result = CliRunner().invoke(cli, ["schemas", "register", "--app", "processors.orders"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 6
    assert any(
        line.startswith("registered orders.placed-value: streamkit.examples.orders.OrderPlaced")
        for line in lines
    )


def test_register_without_a_registry_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMKIT_SCHEMA_REGISTRY_URL", raising=False)
    result = CliRunner().invoke(cli, ["schemas", "register", "--app", "processors.orders"])
    assert "needs STREAMKIT_SCHEMA_REGISTRY_URL" in str(result.exception)

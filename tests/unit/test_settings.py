from pathlib import Path

import pytest

from streamkit.errors import ConfigError
from streamkit.settings import DEFAULT_BOOTSTRAP_SERVERS, Settings, redact


def test_settings_default_to_the_local_broker_and_xdg_dirs() -> None:
    settings = Settings.from_env({"HOME": "/home/u"})
    assert settings.bootstrap_servers == DEFAULT_BOOTSTRAP_SERVERS
    assert settings.cache_dir == Path("/home/u/.cache/streamkit")
    assert settings.state_dir == Path("/home/u/.local/state/streamkit")
    assert settings.schema_registry_url == ""


def test_kafka_passthrough_turns_underscores_into_dots() -> None:
    settings = Settings.from_env(
        {"STREAMKIT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMKIT_KAFKA_LINGER_MS": "20"}
    )
    config = settings.client_config(**{"group.id": "g"})
    assert config["security.protocol"] == "SASL_SSL"
    assert config["linger.ms"] == "20"
    assert config["group.id"] == "g"
    assert config["bootstrap.servers"] == DEFAULT_BOOTSTRAP_SERVERS


def test_the_passthrough_replaces_defaults_and_overrides_replace_both() -> None:
    settings = Settings.from_env({"STREAMKIT_KAFKA_FETCH_MAX_BYTES": "1000"})
    config = settings.client_config(
        {"fetch.max.bytes": 4, "queued.max.messages.kbytes": 8, "linger.ms": 5},
        **{"linger.ms": 1},
    )
    assert config["fetch.max.bytes"] == "1000"  # the user's setting
    assert config["queued.max.messages.kbytes"] == 8  # the default, untouched
    assert config["linger.ms"] == 1  # the caller's override


def test_a_client_kind_gets_its_own_properties_and_the_others_do_not(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("hunter2-sentinel\n")
    settings = Settings.from_env(
        {
            "STREAMKIT_KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
            "STREAMKIT_KAFKA_PRODUCER_TRANSACTION_TIMEOUT_MS": "15000",
            "STREAMKIT_KAFKA_ADMIN_SASL_PASSWORD_FILE": str(secret),
            "STREAMKIT_KAFKA_LINGER_MS": "20",
            "STREAMKIT_KAFKA_PRODUCER_LINGER_MS": "50",
        }
    )
    consumer = settings.client_config(for_client="consumer")
    producer = settings.client_config(for_client="producer")
    admin = settings.client_config(for_client="admin")
    assert consumer["session.timeout.ms"] == "6000"
    assert "transaction.timeout.ms" not in consumer
    assert producer["transaction.timeout.ms"] == "15000"
    assert "session.timeout.ms" not in producer
    assert (consumer["linger.ms"], producer["linger.ms"]) == ("20", "50")  # own one last
    assert admin["sasl.password"] == "hunter2-sentinel"
    assert "session.timeout.ms" not in settings.client_config()  # a tool's shared dict
    assert "hunter2-sentinel" not in repr(settings)
    assert "hunter2-sentinel" in settings.secret_values()


def test_malformed_bootstrap_servers_name_the_variable_and_the_bad_entry() -> None:
    with pytest.raises(ConfigError, match=r"STREAMKIT_BOOTSTRAP_SERVERS: 'kafka' is not host:port"):
        Settings.from_env({"STREAMKIT_BOOTSTRAP_SERVERS": "127.0.0.1:9092,kafka"})


def test_repr_never_shows_secrets() -> None:
    settings = Settings.from_env(
        {
            "STREAMKIT_KAFKA_SASL_PASSWORD": "hunter2-sentinel",
            "STREAMKIT_KAFKA_SSL_KEY_PASSWORD": "keypass-sentinel",
            "STREAMKIT_SCHEMA_REGISTRY_URL": "https://user:regpass-sentinel@registry.example:8081",
            "STREAMKIT_KAFKA_SASL_USERNAME": "alice",
        }
    )
    text = repr(settings) + str(settings)
    for secret in ("hunter2-sentinel", "keypass-sentinel", "regpass-sentinel"):
        assert secret not in text
    assert "alice" in text
    assert redact({"sasl.password": "x", "acks": "all"}) == {"sasl.password": "***", "acks": "all"}


def test_env_is_read_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMKIT_BOOTSTRAP_SERVERS", "10.9.8.7:1234")
    assert Settings.from_env().bootstrap_servers == "10.9.8.7:1234"
    monkeypatch.setenv("STREAMKIT_BOOTSTRAP_SERVERS", "10.9.8.7:4321")
    assert Settings.from_env().bootstrap_servers == "10.9.8.7:4321"


def test_a_kafka_property_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-file\n")
    settings = Settings.from_env({"STREAMKIT_KAFKA_SASL_PASSWORD_FILE": str(secret)})
    assert settings.kafka == {"sasl.password": "s3cret-from-file"}
    assert "s3cret-from-file" not in repr(settings)


def test_an_unreadable_property_file_names_the_variable_and_path_only(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"STREAMKIT_KAFKA_SASL_PASSWORD_FILE": str(missing)})
    assert str(raised.value) == (
        f"STREAMKIT_KAFKA_SASL_PASSWORD_FILE: cannot read {missing}: No such file or directory"
    )

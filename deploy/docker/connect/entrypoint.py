# ruff: noqa: S108, S606 - a container entrypoint: its own /tmp, its own programs
"""The debezium/connect image's start-up, in short: a distributed worker's properties from
the environment, then org.apache.kafka.connect.cli.ConnectDistributed."""

import os
import socket
import sys

MAIN = "org.apache.kafka.connect.cli.ConnectDistributed"
JSON = "org.apache.kafka.connect.json.JsonConverter"


def main() -> None:
    env = os.environ
    if not env.get("BOOTSTRAP_SERVERS"):
        sys.exit("error: set BOOTSTRAP_SERVERS")
    props = {
        "bootstrap.servers": env["BOOTSTRAP_SERVERS"],
        "group.id": env.get("GROUP_ID", "1"),
        "config.storage.topic": env.get("CONFIG_STORAGE_TOPIC", "connect-configs"),
        "offset.storage.topic": env.get("OFFSET_STORAGE_TOPIC", "connect-offsets"),
        "status.storage.topic": env.get("STATUS_STORAGE_TOPIC", "connect-status"),
        "config.storage.replication.factor": "1",
        "offset.storage.replication.factor": "1",
        "status.storage.replication.factor": "1",
        "key.converter": env.get("KEY_CONVERTER", JSON),
        "value.converter": env.get("VALUE_CONVERTER", JSON),
        "listeners": f"http://0.0.0.0:{env.get('REST_PORT', '8083')}",
        "rest.advertised.host.name": env.get("ADVERTISED_HOST_NAME", socket.gethostname()),
        "offset.flush.interval.ms": env.get("OFFSET_FLUSH_INTERVAL_MS", "5000"),
    }
    for name, value in env.items():
        if name.startswith("CONNECT_"):
            props[name.removeprefix("CONNECT_").lower().replace("_", ".")] = value
    path = "/tmp/connect-distributed.properties"
    with open(path, "w") as f:
        f.writelines(f"{key}={value}\n" for key, value in props.items())
    heap = env.get("HEAP_OPTS", "-Xms256m -Xmx512m").split()
    os.execvp("java", ["java", *heap, "-cp", "/kafka/libs/*", MAIN, path])


if __name__ == "__main__":
    main()

"""Start Kafka in KRaft mode from KAFKA_* environment variables (apache/kafka's convention).

KAFKA_FOO_BAR=x becomes foo.bar=x; "__" stands for "_" and "___" for "-". KAFKA_HEAP_OPTS
and KAFKA_OPTS are JVM options, not properties. CLUSTER_ID fixes the cluster id.
"""

import base64
import os
import sys

JVM_VARIABLES = {
    "KAFKA_HEAP_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_DEBUG",
    "KAFKA_VERSION",
    "KAFKA_HOME",
}
DEFAULTS = {
    "node.id": "1",
    "process.roles": "broker,controller",
    "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093",
    "advertised.listeners": "PLAINTEXT://localhost:9092",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "controller.quorum.voters": "1@localhost:9093",
    "log.dirs": "/var/lib/kafka/data",
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}
LOG4J = """\
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=OUT
appender.out.type=Console
appender.out.name=OUT
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.state.name=state.change.logger
logger.state.level=WARN
"""


def property_name(variable: str) -> str:
    """KAFKA_LOG_DIRS -> log.dirs; KAFKA_A___B -> a-b; KAFKA_A__B -> a_b."""
    name = variable[len("KAFKA_") :].lower()
    return (
        name.replace("___", "\0")
        .replace("__", "\1")
        .replace("_", ".")
        .replace("\0", "-")
        .replace("\1", "_")
    )


def main() -> None:
    props = dict(DEFAULTS)
    for variable, value in os.environ.items():
        if variable.startswith("KAFKA_") and variable not in JVM_VARIABLES:
            props[property_name(variable)] = value
    config = "/opt/kafka/server.properties"
    with open(config, "w") as out:
        out.writelines(f"{k}={v}\n" for k, v in props.items())
    with open("/opt/kafka/log4j2.properties", "w") as out:
        out.write(LOG4J)
    java = ["java", *os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m").split()]
    java += os.environ.get("KAFKA_OPTS", "").split()
    java += ["-Dlog4j2.configurationFile=/opt/kafka/log4j2.properties", "-cp", "/opt/kafka/libs/*"]
    log_dir = props["log.dirs"].split(",")[0]
    if not os.path.exists(os.path.join(log_dir, "meta.properties")):
        cluster = (
            os.environ.get("CLUSTER_ID")
            or base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        )
        pid = os.fork()
        if pid == 0:
            os.execvp(  # noqa: S606 - exec replaces this process; arguments are our own
                java[0],
                [
                    *java,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cluster}",
                    "-c",
                    config,
                ],
            )
        _, status = os.waitpid(pid, 0)
        if status != 0:
            sys.exit("formatting the KRaft storage failed")
    os.execvp(java[0], [*java, "kafka.Kafka", config])  # noqa: S606 - exec replaces this process; arguments are our own


if __name__ == "__main__":
    main()

#!/bin/sh
exec java -Xmx256m -cp '/opt/kafka/libs/*' -Dlog4j2.level=WARN org.apache.kafka.tools.TopicCommand "$@"

package bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * (f) The benchmark's map in Kafka Streams: single-object Avro in, single-object Avro out.
 * With BENCH_WORKLOAD=windows, the windowed count: events per key per 1-minute tumbling
 * window of the record timestamp, no grace, final results only (suppress until the window
 * closes), its default RocksDB store with a changelog; JSON results; commits every second
 * (see below).
 */
public final class BenchStreams {
    private BenchStreams() {}

    private static Schema schema(String name) throws IOException {
        Path dir = Path.of(System.getenv().getOrDefault("BENCH_SCHEMAS", "benchmarks/schemas"));
        return new Schema.Parser().parse(Files.readString(dir.resolve(name + ".avsc")));
    }

    public static void main(String[] args) throws Exception {
        Schema in = schema("BenchEvent");
        Schema out = schema("BenchResult");
        BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(GenericData.get(), in);
        BinaryMessageEncoder<GenericRecord> encoder = new BinaryMessageEncoder<>(GenericData.get(), out);

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, System.getenv("BENCH_GROUP"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, System.getenv("BENCH_BOOTSTRAP"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        // BENCH_THREADS stream threads (1 by default; the benchmark runs 1 and 2 on 2 cores).
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG,
                  Integer.parseInt(System.getenv().getOrDefault("BENCH_THREADS", "1")));
        // Every implementation commits every second (streamkit's interval, and faust's and
        // Quix's as configured there); Kafka Streams' at-least-once default is 30 s.
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        props.put(StreamsConfig.STATE_DIR_CONFIG, Files.createTempDirectory("kstreams").toString());
        props.put("auto.offset.reset", "earliest");
        props.put(StreamsConfig.producerPrefix("linger.ms"), 5);
        props.put(StreamsConfig.producerPrefix("compression.type"), "lz4");

        StreamsBuilder builder = new StreamsBuilder();
        if ("restore".equals(System.getenv("BENCH_WORKLOAD"))) {
            restore(builder, props);
            return;
        }
        KStream<byte[], byte[]> source =
            builder.stream(System.getenv("BENCH_INPUT"), Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()));
        if ("windows".equals(System.getenv("BENCH_WORKLOAD"))) {
            // (The count's record cache forwards updates to suppress() only when it flushes,
            // at each commit, "Record caches in the DSL", Kafka Streams developer guide: at
            // the default 30 s interval results would come in bursts 30 s apart.)
            source
                .mapValues(bytes -> {  // the same decoding as the others do
                    try {
                        decoder.decode(bytes);
                        return bytes;
                    } catch (IOException ex) {
                        throw new UncheckedIOException(ex);
                    }
                })
                .groupByKey(Grouped.with(Serdes.ByteArray(), Serdes.ByteArray()))
                .windowedBy(TimeWindows.ofSizeWithNoGrace(Duration.ofMinutes(1)))
                .count()
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                .toStream()
                .map((window, count) -> KeyValue.pair(window.key(), String.format(
                    "{\"key\":\"%s\",\"start\":%d,\"end\":%d,\"value\":%d}",
                    new String(window.key(), StandardCharsets.UTF_8), window.window().start(),
                    window.window().end(), count).getBytes(StandardCharsets.UTF_8)))
                .to(System.getenv("BENCH_OUTPUT"), Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
            run(builder, props);
            return;
        }
        source
            .mapValues(bytes -> {
                try {
                    GenericRecord e = decoder.decode(bytes);
                    GenericRecord r = new GenericData.Record(out);
                    double amount = (Double) e.get("amount");
                    r.put("id", e.get("id"));
                    r.put("user", e.get("user"));
                    r.put("country", e.get("country"));
                    r.put("amount_cents", (long) (amount * 100));
                    r.put("ts", e.get("ts"));
                    r.put("flagged", amount > 500);
                    ByteBuffer buffer = encoder.encode(r);
                    byte[] result = new byte[buffer.remaining()];
                    buffer.get(result);
                    return result;
                } catch (IOException ex) {
                    throw new UncheckedIOException(ex);
                }
            })
            .to(System.getenv("BENCH_OUTPUT"), Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));

        run(builder, props);
    }

    /**
     * BENCH_WORKLOAD=restore: a table of BENCH_INPUT in the store "s" (its default RocksDB
     * store), whose changelog BENCH_GROUP-s-changelog the harness has filled; prints how
     * long the restore took ("restored N records in M ms") and exits.
     */
    private static void restore(StreamsBuilder builder, Properties props) throws Exception {
        builder.table(System.getenv("BENCH_INPUT"),
                      Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()),
                      org.apache.kafka.streams.kstream.Materialized.as("s"));
        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch done = new CountDownLatch(1);
        long[] began = new long[1];
        streams.setGlobalStateRestoreListener(new org.apache.kafka.streams.processor.StateRestoreListener() {
            @Override public void onRestoreStart(org.apache.kafka.common.TopicPartition tp, String store,
                                                 long start, long end) { began[0] = System.nanoTime(); }
            @Override public void onBatchRestored(org.apache.kafka.common.TopicPartition tp, String store,
                                                  long end, long count) {}
            @Override public void onRestoreEnd(org.apache.kafka.common.TopicPartition tp, String store,
                                               long total) {
                System.out.printf("restored %d records in %d ms%n", total,
                                  (System.nanoTime() - began[0]) / 1_000_000);
                System.out.flush();
                done.countDown();
            }
        });
        streams.start();
        done.await();
        streams.close(Duration.ofSeconds(30));
    }

    private static void run(StreamsBuilder builder, Properties props) throws InterruptedException {
        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> { streams.close(); done.countDown(); }));
        streams.start();
        done.await();
    }
}

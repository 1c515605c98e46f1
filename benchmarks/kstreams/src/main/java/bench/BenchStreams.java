package bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
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
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;

/** (f) The benchmark's map in Kafka Streams: single-object Avro in, single-object Avro out. */
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
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.STATE_DIR_CONFIG, Files.createTempDirectory("kstreams").toString());
        props.put("auto.offset.reset", "earliest");
        props.put(StreamsConfig.producerPrefix("linger.ms"), 5);
        props.put(StreamsConfig.producerPrefix("compression.type"), "lz4");

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(System.getenv("BENCH_INPUT"), Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
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

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> { streams.close(); done.countDown(); }));
        streams.start();
        done.await();
    }
}

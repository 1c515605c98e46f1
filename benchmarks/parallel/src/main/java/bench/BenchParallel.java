package bench;

import io.confluent.parallelconsumer.ParallelConsumerOptions;
import io.confluent.parallelconsumer.ParallelConsumerOptions.ProcessingOrder;
import io.confluent.parallelconsumer.ParallelStreamProcessor;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The I/O-bound benchmark in Confluent's Parallel Consumer: each record waits BENCH_WAIT_MS
 * (a call to another service, on one of the library's worker threads), BENCH_CONCURRENCY
 * records at once in KEY order, and the record is passed on to BENCH_OUTPUT.
 *
 * <p>Settings, as its README recommends for this case: ProcessingOrder.KEY, maxConcurrency
 * set to the concurrency wanted, the default commit mode (PERIODIC_CONSUMER_ASYNCHRONOUS,
 * at least once, the offsets of records completed past the lowest incomplete one kept in
 * the commit metadata), pollAndProduce to write the output; the consumer with
 * enable.auto.commit=false as it requires. The same at-least-once, idempotent producer
 * defaults as streamkit's.
 */
public final class BenchParallel {
  public static void main(String[] args) throws Exception {
    String bootstrap = System.getenv("BENCH_BOOTSTRAP");
    String input = System.getenv("BENCH_INPUT");
    String output = System.getenv("BENCH_OUTPUT");
    long waitMs = Long.parseLong(System.getenv().getOrDefault("BENCH_WAIT_MS", "20"));
    int concurrency = Integer.parseInt(System.getenv().getOrDefault("BENCH_CONCURRENCY", "200"));

    Properties consumerProps = new Properties();
    consumerProps.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    consumerProps.put(ConsumerConfig.GROUP_ID_CONFIG, System.getenv("BENCH_GROUP"));
    consumerProps.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    consumerProps.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    consumerProps.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    consumerProps.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    Properties producerProps = new Properties();
    producerProps.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    producerProps.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
    producerProps.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);

    ParallelConsumerOptions<byte[], byte[]> options =
        ParallelConsumerOptions.<byte[], byte[]>builder()
            .ordering(ProcessingOrder.KEY)
            .maxConcurrency(concurrency)
            .consumer(new KafkaConsumer<>(consumerProps))
            .producer(new KafkaProducer<>(producerProps))
            .build();
    ParallelStreamProcessor<byte[], byte[]> processor =
        ParallelStreamProcessor.createEosStreamProcessor(options);
    processor.subscribe(List.of(input));
    processor.pollAndProduce(context -> {
      ConsumerRecord<byte[], byte[]> record = context.getSingleConsumerRecord();
      try {
        Thread.sleep(waitMs);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
      return new ProducerRecord<>(output, record.key(), record.value());
    });
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      processor.close();
      stopped.countDown();
    }));
    stopped.await();
  }
}

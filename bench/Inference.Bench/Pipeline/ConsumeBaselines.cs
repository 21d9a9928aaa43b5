using System.Diagnostics;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using Inference.Engine.Kafka;

namespace Inference.Bench.Pipeline;

/// <summary>The two consume baselines the engine's ingest is compared with, over the same topic.</summary>
internal static unsafe class ConsumeBaselines
{
    /// <summary>`consume-baseline --bootstrap-servers B --topic T --events N`: the batch baseline as its own process.</summary>
    public static int Run(string bootstrap, string topic, long events)
    {
        double rate = Batch(bootstrap, topic, events);
        Console.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{rate:N0} events/s"));
        return 0;
    }

    /// <summary>Confluent.Kafka's per-message Consume() loop, touching each payload's length.</summary>
    public static double PerMessage(string bootstrapServers, string topic, long events)
    {
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = $"bench-per-message-{Guid.NewGuid():N}",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            QueuedMaxMessagesKbytes = 8 * 1024,
            SessionTimeoutMs = 6000,
        }).Build();
        consumer.Subscribe(topic);
        long seen = 0, bytes = 0;
        Stopwatch? clock = null;
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (seen < events && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(100);
            if (result is null)
            {
                continue;
            }
            clock ??= Stopwatch.StartNew();
            bytes += result.Message.Value.Length;
            seen++;
        }
        double seconds = clock?.Elapsed.TotalSeconds ?? double.NaN;
        consumer.Close();
        GC.KeepAlive(bytes);
        return seen / seconds;
    }

    /// <summary>librdkafka's rd_kafka_consume_batch_queue on a consumer's queue, payloads read in place.</summary>
    public static double Batch(string bootstrapServers, string topic, long events)
    {
        RdKafkaNative.EnsureLoaded();
        var errors = stackalloc byte[512];
        var conf = RdKafkaNative.rd_kafka_conf_new();
        Set(conf, "bootstrap.servers", bootstrapServers, errors);
        Set(conf, "group.id", $"bench-batch-{Guid.NewGuid():N}", errors);
        Set(conf, "auto.offset.reset", "earliest", errors);
        Set(conf, "enable.auto.commit", "false", errors);
        Set(conf, "queued.max.messages.kbytes", "8192", errors);
        Set(conf, "session.timeout.ms", "6000", errors);
        var rk = RdKafkaNative.rd_kafka_new(1, conf, errors, 512); // RD_KAFKA_CONSUMER
        if (rk == IntPtr.Zero)
        {
            throw new InvalidOperationException(Marshal.PtrToStringUTF8((IntPtr)errors));
        }
        RdKafkaNative.rd_kafka_poll_set_consumer(rk);
        var topics = RdKafkaNative.rd_kafka_topic_partition_list_new(1);
        RdKafkaNative.rd_kafka_topic_partition_list_add(topics, topic, -1);
        RdKafkaNative.rd_kafka_subscribe(rk, topics);
        RdKafkaNative.rd_kafka_topic_partition_list_destroy(topics);
        var queue = RdKafkaNative.rd_kafka_queue_get_consumer(rk);

        const int BatchSize = 8192;
        var messages = new IntPtr[BatchSize];
        long seen = 0, bytes = 0;
        Stopwatch? clock = null;
        var deadline = DateTime.UtcNow.AddMinutes(5);
        fixed (IntPtr* buffer = messages)
        {
            while (seen < events && DateTime.UtcNow < deadline)
            {
                long got = RdKafkaNative.rd_kafka_consume_batch_queue(queue, 100, buffer, BatchSize);
                for (long i = 0; i < got; i++)
                {
                    var message = (RdKafkaNative.Message*)buffer[i];
                    if (message->Error == 0)
                    {
                        clock ??= Stopwatch.StartNew();
                        // Read the payload in place, as a batch decoder would.
                        bytes += new ReadOnlySpan<byte>((void*)message->Payload, (int)message->Length)[0];
                        seen++;
                    }
                    RdKafkaNative.rd_kafka_message_destroy(buffer[i]);
                }
            }
        }
        double seconds = clock?.Elapsed.TotalSeconds ?? double.NaN;
        RdKafkaNative.rd_kafka_queue_destroy(queue);
        RdKafkaNative.rd_kafka_consumer_close(rk);
        RdKafkaNative.rd_kafka_destroy(rk);
        GC.KeepAlive(bytes);
        return seen / seconds;
    }

    private static void Set(IntPtr conf, string name, string value, byte* errors)
    {
        if (RdKafkaNative.rd_kafka_conf_set(conf, name, value, errors, 512) != 0)
        {
            throw new InvalidOperationException($"{name}: {Marshal.PtrToStringUTF8((IntPtr)errors)}");
        }
    }
}

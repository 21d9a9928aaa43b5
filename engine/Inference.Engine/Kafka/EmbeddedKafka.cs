using System.Runtime.InteropServices;

namespace Inference.Engine.Kafka;

/// <summary>
/// A Kafka-protocol broker inside this process (librdkafka's mock cluster) listening on 127.0.0.1
/// TCP ports, usable by any Kafka client on the machine. For the demo, development and tests: it
/// keeps at most ~5 MiB or 100,000 produce batches per partition and silently drops older data, so
/// spread large streams over enough partitions. Production points the engine at a real cluster.
/// </summary>
internal sealed unsafe class EmbeddedKafka : IDisposable
{
    private const int ProducerType = 0; // RD_KAFKA_PRODUCER
    private readonly int _brokers;
    private IntPtr _client;
    private IntPtr _cluster;

    public EmbeddedKafka(int brokers = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(brokers);
        _brokers = brokers;
        RdKafkaNative.EnsureLoaded();
        var errors = stackalloc byte[512];
        var conf = RdKafkaNative.rd_kafka_conf_new();
        // The mock cluster is owned by a client handle; this one never connects anywhere.
        RdKafkaNative.rd_kafka_conf_set(conf, "bootstrap.servers", "", errors, 512);
        // Only warnings and worse: the owning client's "no bootstrap.servers" notice is expected.
        RdKafkaNative.rd_kafka_conf_set(conf, "log_level", "4", errors, 512);
        _client = RdKafkaNative.rd_kafka_new(ProducerType, conf, errors, 512);
        if (_client == IntPtr.Zero)
        {
            throw new InvalidOperationException($"librdkafka could not create the embedded broker's client: {Marshal.PtrToStringUTF8((IntPtr)errors)}");
        }
        _cluster = RdKafkaNative.rd_kafka_mock_cluster_new(_client, brokers);
        if (_cluster == IntPtr.Zero)
        {
            RdKafkaNative.rd_kafka_destroy(_client);
            throw new InvalidOperationException("librdkafka could not start the embedded broker.");
        }
        BootstrapServers = Marshal.PtrToStringUTF8(RdKafkaNative.rd_kafka_mock_cluster_bootstraps(_cluster))
            ?? throw new InvalidOperationException("The embedded broker has no bootstrap address.");
    }

    /// <summary>The brokers' addresses, e.g. "127.0.0.1:39123".</summary>
    public string BootstrapServers { get; }

    public void CreateTopic(string name, int partitions, int replicationFactor = 1)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(partitions);
        ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
        int error = RdKafkaNative.rd_kafka_mock_topic_create(_cluster, name, partitions, replicationFactor);
        if (error != 0)
        {
            throw new InvalidOperationException($"Creating topic '{name}' failed: {RdKafkaNative.ErrorText(error)}");
        }
    }

    /// <summary>
    /// Fault injection: the broker answers metadata requests for <paramref name="topic"/> with
    /// <paramref name="error"/> (e.g. <c>LeaderNotAvailable</c>: producers that have
    /// not written to it yet hold their messages and retry), until set back to <c>NoError</c>.
    /// </summary>
    public void SetTopicError(string topic, Confluent.Kafka.ErrorCode error)
    {
        ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
        RdKafkaNative.rd_kafka_mock_topic_set_error(_cluster, topic, (int)error);
    }

    /// <summary>
    /// Fault injection: every broker drops its connections and refuses new ones (<paramref name="down"/>
    /// true), as in an outage of the whole cluster, or takes connections again (false). Data is kept.
    /// </summary>
    public void SetDown(bool down)
    {
        ObjectDisposedException.ThrowIf(_cluster == IntPtr.Zero, this);
        for (int broker = 1; broker <= _brokers; broker++)
        {
            int error = down ? RdKafkaNative.rd_kafka_mock_broker_set_down(_cluster, broker) : RdKafkaNative.rd_kafka_mock_broker_set_up(_cluster, broker);
            if (error != 0)
            {
                throw new InvalidOperationException($"Setting broker {broker} {(down ? "down" : "up")} failed: {RdKafkaNative.ErrorText(error)}");
            }
        }
    }

    public void Dispose()
    {
        if (_cluster != IntPtr.Zero)
        {
            RdKafkaNative.rd_kafka_mock_cluster_destroy(_cluster);
            _cluster = IntPtr.Zero;
        }
        if (_client != IntPtr.Zero)
        {
            RdKafkaNative.rd_kafka_destroy(_client);
            _client = IntPtr.Zero;
        }
    }
}

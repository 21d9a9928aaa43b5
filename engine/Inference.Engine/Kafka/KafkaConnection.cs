using Confluent.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Kafka;

/// <summary>
/// Where the engine's Kafka clients connect: the configured cluster, or an embedded broker this
/// service starts (with the engine's topics) when <c>Inference:Kafka:Embedded</c> is set. It is the
/// first service the host starts (see the engine's start order); nothing reads where to connect before.
/// </summary>
internal sealed partial class KafkaConnection(IOptions<KafkaOptions> options, ILogger<KafkaConnection> logger) : IHostedService, IDisposable
{
    private readonly HashSet<string> _created = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _partitionCounts = new(StringComparer.Ordinal);
    private EmbeddedKafka? _embedded;
    private string? _bootstrapServers;

    /// <summary>
    /// How long the broker may hold a fetch that has no new data: at low load an event reaches the
    /// consumer at most this long after it is written (real brokers answer as soon as data arrives).
    /// </summary>
    public const int FetchWaitMaxMs = 5;

    public KafkaOptions Options { get; } = options.Value;

    /// <summary>The brokers to connect to; known once the connection has started.</summary>
    public string BootstrapServers => _bootstrapServers
        ?? throw new InvalidOperationException("The Kafka connection is read before it started (it starts first of the engine's services).");

    public bool IsEmbedded => _embedded is not null;

    /// <summary>Loads librdkafka and, when configured, starts the embedded broker with the engine's topics.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Library.Load();
        if (Options.Embedded && string.IsNullOrWhiteSpace(Options.BootstrapServers))
        {
            _embedded = new EmbeddedKafka();
            foreach (var topic in new[] { Options.EventsTopic, Options.LabelsTopic, Options.DeadLetterTopic, Options.LabelsDeadLetterTopic })
            {
                EnsureEmbeddedTopic(topic);
            }
            _bootstrapServers = _embedded.BootstrapServers;
            Log.EmbeddedBroker(logger, _bootstrapServers, Options.EmbeddedPartitions);
        }
        else
        {
            _bootstrapServers = Options.BootstrapServers!;
        }
        return Task.CompletedTask;
    }

    /// <summary>The broker (when embedded) stays up until the host disposes the connection, after every client stopped.</summary>
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Creates a topic on the embedded broker if it has none of that name (every topic the engine uses); a real
    /// cluster's topics are created by its operators (or auto-created).
    /// </summary>
    public void EnsureEmbeddedTopic(string topic, int partitions = 0)
    {
        if (_embedded is null || string.IsNullOrWhiteSpace(topic))
        {
            return;
        }
        lock (_created)
        {
            if (_created.Add(topic))
            {
                _embedded.CreateTopic(topic, partitions > 0 ? partitions : Options.EmbeddedPartitions);
            }
        }
    }

    /// <summary>The embedded broker, when this connection started one (tests inject faults through it).</summary>
    public EmbeddedKafka? Embedded => _embedded;

    /// <summary>Consumer settings shared by the engine's consumers; offsets are stored by the engine, committed in the background.</summary>
    public ConsumerConfig ConsumerConfig(string groupId)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = BootstrapServers,
            GroupId = groupId,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = true,
            EnableAutoOffsetStore = false,
            AutoCommitIntervalMs = 1_000,
            SessionTimeoutMs = Options.SessionTimeoutMs,
            HeartbeatIntervalMs = Math.Max(100, Options.SessionTimeoutMs / 5),
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
            // Prefetch deep enough to cover a few micro-batches of every assigned partition, and
            // when that is full back off only briefly (librdkafka's default is 1 s, a stall that a
            // consumer faster than the fetcher hits at every threshold crossing).
            QueuedMaxMessagesKbytes = 64 * 1024,
            FetchWaitMaxMs = FetchWaitMaxMs,
        };
        config.Set("fetch.queue.backoff.ms", "5");
        foreach (var (key, value) in Options.Consumer)
        {
            config.Set(key, value);
        }
        return config;
    }

    /// <summary>
    /// Producer settings of the engine's producers (dead letters, gRPC ingestion): idempotent, and with
    /// the same security settings the consumers are given (<c>security.*</c>, <c>sasl.*</c>, <c>ssl.*</c>).
    /// </summary>
    public ProducerConfig ProducerConfig()
    {
        var config = new ProducerConfig
        {
            BootstrapServers = BootstrapServers,
            LingerMs = 5,
            EnableIdempotence = true,
            // Kafka's default (Java) partitioner, so records the engine writes (gRPC ingestion, scores) land
            // where other producers' records with the same key do, and where Score routing looks for them.
            Partitioner = Partitioner.Murmur2Random,
        };
        foreach (var (key, value) in Options.Consumer)
        {
            if (key.StartsWith("security.", StringComparison.Ordinal) || key.StartsWith("sasl.", StringComparison.Ordinal)
                || key.StartsWith("ssl.", StringComparison.Ordinal))
            {
                config.Set(key, value);
            }
        }
        return config;
    }

    /// <summary>
    /// How many partitions <paramref name="topic"/> has; null when the cluster does not know it (yet) or does
    /// not answer. Asked of the cluster once per topic (rows are partitioned by this count: it is taken as fixed).
    /// </summary>
    public int? PartitionCount(string topic)
    {
        if (_partitionCounts.TryGetValue(topic, out int known))
        {
            return known;
        }
        var config = new AdminClientConfig();
        foreach (var (key, value) in ProducerConfig())
        {
            if (key is "bootstrap.servers" || key.StartsWith("security.", StringComparison.Ordinal) || key.StartsWith("sasl.", StringComparison.Ordinal)
                || key.StartsWith("ssl.", StringComparison.Ordinal))
            {
                config.Set(key, value);
            }
        }
        try
        {
            using var admin = new AdminClientBuilder(config).Build();
            var found = admin.GetMetadata(topic, TimeSpan.FromMilliseconds(Options.MetadataTimeoutMs)).Topics.Find(t => t.Topic == topic);
            if (found is null || found.Error.IsError || found.Partitions.Count == 0)
            {
                return null;
            }
            return _partitionCounts[topic] = found.Partitions.Count;
        }
        catch (KafkaException)
        {
            return null;
        }
    }

    /// <summary>The partition count of <paramref name="topic"/> when it was already asked for; never asks the cluster.</summary>
    public int? KnownPartitionCount(string topic) => _partitionCounts.TryGetValue(topic, out int known) ? known : null;

    public void Dispose() => _embedded?.Dispose();

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Embedded Kafka-protocol broker at {BootstrapServers} ({Partitions} partitions per topic); for demo, development and tests only.")]
        public static partial void EmbeddedBroker(ILogger logger, string bootstrapServers, int partitions);
    }
}

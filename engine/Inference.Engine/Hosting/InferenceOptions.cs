using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Models;

namespace Inference.Engine.Hosting;

/// <summary>What a process of the engine does.</summary>
public enum EngineRole
{
    /// <summary>Ingest, features, serving and training, with the parameter shard in the same process.</summary>
    All,

    /// <summary>Ingest, features, serving and training, syncing with a remote parameter server.</summary>
    Worker,

    /// <summary>Only the parameter server shard.</summary>
    Ps,
}

/// <summary>The engine's configuration, section <c>Inference</c>. Every default is a named constant.</summary>
public sealed class InferenceOptions
{
    public const string Section = "Inference";

    public EngineRole Role { get; set; } = EngineRole.All;

    public KafkaOptions Kafka { get; set; } = new();

    public FeatureOptions Features { get; set; } = new();

    public ModelOptions Model { get; set; } = new();

    public TrainingOptions Training { get; set; } = new();

    public ServingOptions Serving { get; set; } = new();

    public SyncOptions Sync { get; set; } = new();
}

public sealed class KafkaOptions
{
    public const string DefaultEventsTopic = "events";
    public const string DefaultLabelsTopic = "labels";
    public const string DefaultDeadLetterTopic = "events.dead-letter";
    public const string DefaultGroupId = "inference";
    public const int DefaultSessionTimeoutMs = 10_000;

    /// <summary>The cluster to use, e.g. "broker1:9092,broker2:9092". Required unless <see cref="Embedded"/>.</summary>
    public string? BootstrapServers { get; set; }

    /// <summary>Start an embedded Kafka-protocol broker in this process (demo, development, tests).</summary>
    public bool Embedded { get; set; }

    /// <summary>Partitions of each topic the embedded broker creates.</summary>
    public int EmbeddedPartitions { get; set; } = 8;

    public string EventsTopic { get; set; } = DefaultEventsTopic;

    public string LabelsTopic { get; set; } = DefaultLabelsTopic;

    /// <summary>Where malformed events are set aside, with the reason in a header; empty: counted and dropped.</summary>
    public string DeadLetterTopic { get; set; } = DefaultDeadLetterTopic;

    /// <summary>The consumer group of the events consumer; the labels consumer uses "{GroupId}.labels".</summary>
    public string GroupId { get; set; } = DefaultGroupId;

    public int SessionTimeoutMs { get; set; } = DefaultSessionTimeoutMs;

    /// <summary>Further librdkafka settings for the consumers (e.g. security.protocol, sasl.*).</summary>
    public Dictionary<string, string> Consumer { get; set; } = [];
}

public sealed class FeatureOptions
{
    public const int DefaultInitialCapacity = FeatureTableOptions.DefaultInitialCapacity;
    public const int DefaultCapacity = FeatureTableOptions.DefaultMaxCapacity;
    public const int DefaultMaxBatchEvents = FeatureTableOptions.DefaultMaxBatchEvents;
    public const int DefaultMaxBatchDelayMs = 20;
    public const int DefaultEvictionScanIntervalMs = 60_000;

    /// <summary>
    /// The declared features, in model-input order. Empty means <see cref="DefaultDefinitions"/>.
    /// (Empty by default in code because configuration binding appends to a list.)
    /// </summary>
    public List<FeatureDefinition> Definitions { get; set; } = [];

    /// <summary>A JSON file of feature declarations (an array, or an object with "Definitions"); replaces <see cref="Definitions"/>.</summary>
    public string? File { get; set; }

    /// <summary>Entity slots allocated at start (at most <see cref="Capacity"/>); the table doubles as entities arrive.</summary>
    public int InitialCapacity { get; set; } = DefaultInitialCapacity;

    /// <summary>The most entities held; beyond it the idlest entities are evicted (metric inference.features.evicted).</summary>
    public int Capacity { get; set; } = DefaultCapacity;

    /// <summary>Entities with no event for this long (by event time, against the newest event applied) are evicted; 0 keeps them.</summary>
    public long EntityTtlMs { get; set; }

    /// <summary>How often the TTL is applied.</summary>
    public int EvictionScanIntervalMs { get; set; } = DefaultEvictionScanIntervalMs;

    /// <summary>A micro-batch closes at this many events...</summary>
    public int MaxBatchEvents { get; set; } = DefaultMaxBatchEvents;

    /// <summary>...or this long after its first event, whichever comes first.</summary>
    public int MaxBatchDelayMs { get; set; } = DefaultMaxBatchDelayMs;

    public AcceleratorKind Accelerator { get; set; } = AcceleratorKind.Auto;

    /// <summary>Event count, mean amount and 1-hour decayed amount, log-scaled: the engine's features when none are declared.</summary>
    public static List<FeatureDefinition> DefaultDefinitions() =>
    [
        new() { Name = "count", Aggregation = Aggregation.Count, Transform = FeatureTransform.SignedLog1p },
        new() { Name = "amount_mean", Aggregation = Aggregation.Mean, Field = "amount", Transform = FeatureTransform.SignedLog1p },
        new() { Name = "amount_decayed_1h", Aggregation = Aggregation.DecayedSum, Field = "amount", HalfLifeMs = 3_600_000, Transform = FeatureTransform.SignedLog1p },
    ];
}

public sealed class ModelOptions
{
    public const int DefaultHidden = 16;
    public const long DefaultSeed = 17;

    public ModelKind Kind { get; set; } = ModelKind.Logistic;

    public int Hidden { get; set; } = DefaultHidden;

    /// <summary>Features each score request row brings, appended after the entity features.</summary>
    public int RequestFeatures { get; set; }

    public long Seed { get; set; } = DefaultSeed;

    public int IntraOpThreads { get; set; } = TorchRuntime.DefaultIntraOpThreads;
}

public sealed class TrainingOptions
{
    public const int DefaultBatchSize = 64;
    public const int DefaultMaxBatchDelayMs = 200;
    public const double DefaultLearningRate = 0.1;
    public const int DefaultPublishIntervalMs = 250;

    public bool Enabled { get; set; } = true;

    /// <summary>Labels per SGD step.</summary>
    public int BatchSize { get; set; } = DefaultBatchSize;

    /// <summary>A step runs on fewer labels once the oldest has waited this long.</summary>
    public int MaxBatchDelayMs { get; set; } = DefaultMaxBatchDelayMs;

    public double LearningRate { get; set; } = DefaultLearningRate;

    /// <summary>The trainer publishes its weights to serving at most this often.</summary>
    public int PublishIntervalMs { get; set; } = DefaultPublishIntervalMs;
}

public sealed class ServingOptions
{
    public const int DefaultPort = 50051;
    public const int DefaultMaxRowsPerRequest = 4_096;
    public const int DefaultMaxBatchRows = 1_024;
    public const int DefaultMaxQueueDelayMicroseconds = 0;
    public const int DefaultMaxQueuedRequests = 2_048;

    /// <summary>The address gRPC listens on.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>The gRPC port (HTTP/2 without TLS); 0 picks a free one.</summary>
    public int Port { get; set; } = DefaultPort;

    public int MaxRowsPerRequest { get; set; } = DefaultMaxRowsPerRequest;

    /// <summary>
    /// Rows one dynamic batch gathers and scores together at most: requests that wait while the device
    /// is busy go together (a request larger than this goes alone).
    /// </summary>
    public int MaxBatchRows { get; set; } = DefaultMaxBatchRows;

    /// <summary>
    /// How long a batch that is not full may wait for more requests before it is launched (Triton's
    /// max queue delay). 0: launch at once; requests still batch while the device is busy.
    /// </summary>
    public int MaxQueueDelayMicroseconds { get; set; } = DefaultMaxQueueDelayMicroseconds;

    /// <summary>Score requests waiting for the device at most; beyond it a request is shed with RESOURCE_EXHAUSTED.</summary>
    public int MaxQueuedRequests { get; set; } = DefaultMaxQueuedRequests;
}

public sealed class SyncOptions
{
    public const int DefaultIntervalMs = 1_000;

    /// <summary>The parameter server a worker syncs with, e.g. "http://ps-0:50051". Required for workers.</summary>
    public string? ParameterServer { get; set; }

    public int IntervalMs { get; set; } = DefaultIntervalMs;

    /// <summary>Names this worker to the parameter server; defaults to host name and process id.</summary>
    public string? WorkerId { get; set; }
}

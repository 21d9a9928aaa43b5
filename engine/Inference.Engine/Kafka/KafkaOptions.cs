namespace Inference.Engine.Kafka;

/// <summary>The Kafka settings of the ingest stage (the labels consumer of training uses the same connection), section <c>Inference:Kafka</c>.</summary>
public sealed class KafkaOptions
{
    public const string Section = "Inference:Kafka";

    public const string DefaultEventsTopic = "events";
    public const string DefaultLabelsTopic = "labels";
    public const string DefaultDeadLetterTopic = "events.dead-letter";
    public const string DefaultLabelsDeadLetterTopic = "labels.dead-letter";
    public const string DefaultGroupId = "inference";
    public const int DefaultSessionTimeoutMs = 10_000;

    /// <summary>The cluster to use, e.g. "broker1:9092,broker2:9092". Required unless <see cref="Embedded"/>.</summary>
    public string? BootstrapServers { get; set; }

    /// <summary>Start an embedded Kafka-protocol broker in this process (demo, development, tests).</summary>
    public bool Embedded { get; set; }

    /// <summary>Partitions of each topic the embedded broker creates.</summary>
    public int EmbeddedPartitions { get; set; } = 8;

    public string EventsTopic { get; set; } = DefaultEventsTopic;

    /// <summary>
    /// How events on <see cref="EventsTopic"/> are encoded: Json, Protobuf (one inference.v1.Event per
    /// message), ProtobufBatch (one inference.v1.EventBatch) or Arrow (an Arrow IPC stream). A message's
    /// content-type header, when present, takes precedence.
    /// </summary>
    public EventFormat EventsFormat { get; set; } = EventFormat.Json;

    public string LabelsTopic { get; set; } = DefaultLabelsTopic;

    /// <summary>Where malformed events are set aside, with the reason in a header; empty: counted and dropped.</summary>
    public string DeadLetterTopic { get; set; } = DefaultDeadLetterTopic;

    /// <summary>Where malformed labels are set aside; empty: counted and dropped.</summary>
    public string LabelsDeadLetterTopic { get; set; } = DefaultLabelsDeadLetterTopic;

    /// <summary>The consumer group of the events consumer; the labels consumer uses "{GroupId}.labels".</summary>
    public string GroupId { get; set; } = DefaultGroupId;

    public int SessionTimeoutMs { get; set; } = DefaultSessionTimeoutMs;

    public const int DefaultMaxUnackedIngestBatches = 32;

    /// <summary>gRPC ingestion: batches of one stream written but not yet acked; beyond it the server stops reading the stream.</summary>
    public int MaxUnackedIngestBatches { get; set; } = DefaultMaxUnackedIngestBatches;

    public const int DefaultMetadataTimeoutMs = 10_000;
    public const int DefaultAssignmentQueryTimeoutMs = 5_000;
    public const int DefaultFlushTimeoutMs = 5_000;
    public const int DefaultDeadLetterShutdownTimeoutMs = 10_000;

    /// <summary>How long a metadata request (a topic's partitions), a committed-offsets request or a watermark query may take, in ms.</summary>
    public int MetadataTimeoutMs { get; set; } = DefaultMetadataTimeoutMs;

    /// <summary>How long the rebalance callback waits for the end offset of a newly assigned partition, in ms; past it the partition is not marked as catching up.</summary>
    public int AssignmentQueryTimeoutMs { get; set; } = DefaultAssignmentQueryTimeoutMs;

    /// <summary>How long a stopping producer (dead letters, gRPC ingestion) waits for its queued messages to be delivered, in ms.</summary>
    public int FlushTimeoutMs { get; set; } = DefaultFlushTimeoutMs;

    /// <summary>How long a stopping consumer waits for its dead letters to be acknowledged before it leaves their offsets uncommitted, in ms.</summary>
    public int DeadLetterShutdownTimeoutMs { get; set; } = DefaultDeadLetterShutdownTimeoutMs;

    /// <summary>Further librdkafka settings for the consumers (e.g. security.protocol, sasl.*).</summary>
    public Dictionary<string, string> Consumer { get; set; } = [];
}

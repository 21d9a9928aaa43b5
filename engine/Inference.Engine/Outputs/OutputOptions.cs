namespace Inference.Engine.Outputs;

/// <summary>How scored events and alerts are encoded on their topics.</summary>
public enum OutputFormat
{
    Json,
    Protobuf,
}

/// <summary>Stream scoring, section <c>Inference:Outputs:Scores</c>: events scored as they are applied, to a topic.</summary>
public sealed class ScoreOutputOptions
{
    public const string Section = "Inference:Outputs:Scores";

    /// <summary>Off unless set.</summary>
    public bool Enabled { get; set; }

    /// <summary>
    /// Which events are scored: <c>All</c>, or the name of an event field that selects one when it is
    /// <c>true</c>, a nonzero number or the string "true" (e.g. <c>score</c> for <c>"score": true</c>).
    /// </summary>
    public string Select { get; set; } = "All";

    public string Topic { get; set; } = "scores";

    /// <summary>
    /// Where each transaction records how far it scored, per source partition (one partition is
    /// enough): after a restart, events at or below it are not scored again.
    /// </summary>
    public string ProgressTopic { get; set; } = "scores.progress";

    public OutputFormat Format { get; set; } = OutputFormat.Json;

    /// <summary>
    /// The producer's transactional id. Default: the consumer group id + "-scores", and in a pool's
    /// worker (or wherever <c>Inference:Sync:WorkerId</c> is set) + "-" + the worker id, so that
    /// workers never fence each other. Unique per producing process.
    /// </summary>
    public string? TransactionalId { get; set; }

    /// <summary>Applied batches waiting for their transaction before ingest waits (backpressure, counted and logged).</summary>
    public int MaxPendingBatches { get; set; } = DefaultMaxPendingBatches;

    public const int DefaultMaxPendingBatches = 256;

    /// <summary>How the producer compresses record batches: none, gzip, snappy, lz4 (the default: cheap, about 4× on JSON records) or zstd.</summary>
    public string Compression { get; set; } = "lz4";

    /// <summary>librdkafka settings for the scores producer (e.g. <c>linger.ms</c>), applied last.</summary>
    public Dictionary<string, string> Producer { get; set; } = [];

    /// <summary>Each record carries the whole watermark (one entry per partition of the events topic): off, since it makes records large.</summary>
    public bool IncludeWatermark { get; set; }

    /// <summary>Each record carries the model inputs it was scored from.</summary>
    public bool IncludeFeatures { get; set; }

    /// <summary>
    /// When nothing more comes to score for this long after a transaction, an empty one commits after it
    /// to name it as committed (what restarts and checkpoints count on).
    /// </summary>
    public int IdleCommitMs { get; set; } = DefaultIdleCommitMs;

    public const int DefaultIdleCommitMs = 100;

    /// <summary>How long the start may take to read the progress topic; past it the engine does not start (naming the cause).</summary>
    public int ProgressReadTimeoutMs { get; set; } = DefaultProgressReadTimeoutMs;

    public const int DefaultProgressReadTimeoutMs = 60_000;

    /// <summary>The producer's transaction timeout: the broker aborts a transaction left open this long (by a producer that crashed), in ms.</summary>
    public int TransactionTimeoutMs { get; set; } = DefaultTransactionTimeoutMs;

    public const int DefaultTransactionTimeoutMs = 10_000;

    /// <summary>How long a transaction's commit or abort may take before it counts as failed and is tried again, in ms.</summary>
    public int CommitTimeoutMs { get; set; } = DefaultCommitTimeoutMs;

    public const int DefaultCommitTimeoutMs = 60_000;

    public bool SelectsAll => string.Equals(Select, "All", StringComparison.OrdinalIgnoreCase);
}

/// <summary>One alert rule: a scored event matches when every condition it sets holds.</summary>
public sealed class AlertRule
{
    public string Name { get; set; } = "";

    /// <summary>Matches scores strictly above this.</summary>
    public double? ScoreAbove { get; set; }

    /// <summary>A declared feature whose value (untransformed) must be above <see cref="FeatureAbove"/>.</summary>
    public string? Feature { get; set; }

    public double? FeatureAbove { get; set; }
}

/// <summary>One webhook endpoint alerts are posted to, signed after the Standard Webhooks convention.</summary>
public sealed class WebhookOptions
{
    public string Url { get; set; } = "";

    /// <summary>The signing secret: <c>whsec_</c> + base64 (as Standard Webhooks issues them), or any text used as is.</summary>
    public string Secret { get; set; } = "";

    /// <summary>Attempts per alert, the first included; after the last the alert goes to the dead-letter topic.</summary>
    public int MaxAttempts { get; set; } = 6;

    /// <summary>The first retry's delay; each next one doubles, with jitter.</summary>
    public int InitialDelayMs { get; set; } = 500;

    /// <summary>How long one attempt may take.</summary>
    public int TimeoutMs { get; set; } = 10_000;
}

/// <summary>Alerts, section <c>Inference:Outputs:Alerts</c>: rules over scored events and where alerts go.</summary>
public sealed class AlertOptions
{
    public const string Section = "Inference:Outputs:Alerts";

    public List<AlertRule> Rules { get; set; } = [];

    public string Topic { get; set; } = "alerts";

    /// <summary>Alerts a webhook never accepted, after its last attempt.</summary>
    public string DeadLetterTopic { get; set; } = "alerts.dead-letter";

    public List<WebhookOptions> Webhooks { get; set; } = [];

    /// <summary>Alerts kept for Server-Sent Events clients that resume with Last-Event-ID.</summary>
    public int StreamBuffer { get; set; } = 1_000;
}

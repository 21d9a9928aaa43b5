using Inference.Engine.Features;

namespace Inference.Engine.Serving;

/// <summary>The serving stage: the gRPC endpoint and dynamic batching, section <c>Inference:Serving</c>.</summary>
public sealed class ServingOptions
{
    public const string Section = "Inference:Serving";

    public const int DefaultPort = 50051;
    public const int DefaultMaxRowsPerRequest = 4_096;
    public const int DefaultMaxBatchRows = 1_024;
    public const int DefaultMaxQueueDelayMicroseconds = 0;
    public const int DefaultMaxQueuedRequests = 2_048;

    /// <summary>The address gRPC listens on.</summary>
    public string Host { get; set; } = "127.0.0.1";

    /// <summary>The gRPC port (HTTP/2 without TLS); 0 picks a free one.</summary>
    public int Port { get; set; } = DefaultPort;

    /// <summary>
    /// In a pool: the address other workers forward Score rows to, e.g. "http://worker-0.workers:50051"
    /// (what a StatefulSet pod is reached at); unset: the address it listens on (an unspecified host
    /// replaced by the machine name).
    /// </summary>
    public string? AdvertisedAddress { get; set; }

    public const int DefaultHttpPort = 9464;

    /// <summary>
    /// The plain HTTP/1.1 port for Kubernetes probes (<c>/healthz</c>, <c>/readyz</c>) on the same address;
    /// 0 picks a free one, -1 serves none.
    /// </summary>
    public int HttpPort { get; set; } = DefaultHttpPort;

    /// <summary>
    /// gRPC server reflection (what <c>grpcurl list</c> uses): unset, on when listening on loopback only;
    /// true or false to decide.
    /// </summary>
    public bool? Reflection { get; set; }

    /// <summary>
    /// After a restart with checkpoints, readiness (gRPC health, <c>/readyz</c>) waits until the events and
    /// labels that were in the topics at start are replayed to within this many (summed over partitions).
    /// </summary>
    public long ReadyLagEvents { get; set; }

    /// <summary>Whether reflection is served: as configured, else only on a loopback address.</summary>
    public bool ReflectionEnabled => Reflection ?? (Host is "localhost" || (System.Net.IPAddress.TryParse(Host, out var address) && System.Net.IPAddress.IsLoopback(address)));

    public int MaxRowsPerRequest { get; set; } = DefaultMaxRowsPerRequest;

    public const int DefaultMaxMessageBytes = 256 << 20;

    /// <summary>
    /// The largest gRPC message the engine takes or sends (parameter pushes and pulls of large models, big
    /// ingest batches), in bytes; gRPC's own default is 4 MiB, which a model of a million weights exceeds.
    /// </summary>
    public int MaxMessageBytes { get; set; } = DefaultMaxMessageBytes;

    public const int DefaultMaxRequestBytes = 4 << 20;

    /// <summary>
    /// The largest Score, GetFeatures or GetModel request (and any other but ingestion and parameter sync),
    /// in bytes: a larger one is refused with RESOURCE_EXHAUSTED from its length prefix, before it is read.
    /// </summary>
    public int MaxRequestBytes { get; set; } = DefaultMaxRequestBytes;

    public const int DefaultMaxIngestBytes = 64 << 20;

    /// <summary>The largest gRPC ingestion request (a batch of events or labels), in bytes.</summary>
    public int MaxIngestBytes { get; set; } = DefaultMaxIngestBytes;

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

    /// <summary>
    /// In a pool (role Worker): rows of a partition whose state is not whole here (just arrived and still
    /// restored or replayed, or owned by no live worker mid-rebalance) are refused with UNAVAILABLE naming
    /// the partition, instead of answered with <c>origins[].catching_up</c> set. Off by default.
    /// </summary>
    public bool RequireCaughtUp { get; set; }

    /// <summary>GetFeatures reads waiting for the device at most; beyond it a read is refused with RESOURCE_EXHAUSTED.</summary>
    public int MaxQueuedReads { get; set; } = 1_024;

    /// <summary>Read-your-writes calls (Score with min_watermark, ingestion acks that wait to be applied) waiting at most; beyond it RESOURCE_EXHAUSTED.</summary>
    public int MaxWatermarkWaiters { get; set; } = 4_096;

    /// <summary>The limits of the device executor's serving queue.</summary>
    internal GatherLimits Gathers => new()
    {
        MaxBatchRows = MaxBatchRows,
        MaxRowsPerRequest = MaxRowsPerRequest,
        MaxQueueDelayMicroseconds = MaxQueueDelayMicroseconds,
        MaxQueuedRequests = MaxQueuedRequests,
        MaxQueuedReads = MaxQueuedReads,
        MaxWatermarkWaiters = MaxWatermarkWaiters,
    };
}

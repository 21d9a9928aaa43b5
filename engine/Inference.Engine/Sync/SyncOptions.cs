namespace Inference.Engine.Sync;

/// <summary>How the parameter server merges the workers' weight deltas.</summary>
public enum WeightMerge
{
    /// <summary>
    /// Every delta is added whole: every worker's steps count, as if one node had learned every label; a
    /// round of N workers moves the weights N times as far as one worker's step (the learning rate per
    /// label is the configured one, per round it grows with the workers).
    /// </summary>
    Sum,

    /// <summary>
    /// Each delta is divided by the workers that pushed within <c>MemberTimeoutMs</c>: a round moves the
    /// weights by the workers' mean step (the learning rate per label is divided by the workers).
    /// </summary>
    Mean,
}

/// <summary>Parameter sync with the parameter server, section <c>Inference:Sync</c>.</summary>
public sealed class SyncOptions
{
    public const string Section = "Inference:Sync";

    public const int DefaultIntervalMs = 1_000;

    /// <summary>
    /// The parameter server a worker syncs with, e.g. "http://ps-0:50051", or its shards separated by commas
    /// ("http://ps-0:50052,http://ps-1:50052"; every worker lists them in the same order). Required for workers.
    /// </summary>
    public string? ParameterServer { get; set; }

    /// <summary>The shards' addresses, in order.</summary>
    public IReadOnlyList<string> ParameterServers => (ParameterServer ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>On the parameter server: Sum (the default) or Mean, see <see cref="WeightMerge"/>.</summary>
    public WeightMerge Merge { get; set; } = WeightMerge.Sum;

    /// <summary>On the parameter server: a pool member that has not announced itself for this long is dropped from the routing map.</summary>
    public int MemberTimeoutMs { get; set; } = 10_000;

    /// <summary>A tensor of more values than this is cut into ranges of rows spread over the shards.</summary>
    public int MaxTensorPartValues { get; set; } = ParameterPlacement.DefaultMaxPartValues;

    public int IntervalMs { get; set; } = DefaultIntervalMs;

    /// <summary>A worker: how long it waits at start for its parameter server shards to answer before it fails (exit 3).</summary>
    public int StartTimeoutMs { get; set; } = 30_000;

    public const int DefaultRpcTimeoutMs = 10_000;
    public const int DefaultStartProbeTimeoutMs = 2_000;
    public const int DefaultAnnounceTimeoutMs = 5_000;

    /// <summary>The deadline of a worker's push and pull calls to its parameter server, in ms.</summary>
    public int RpcTimeoutMs { get; set; } = DefaultRpcTimeoutMs;

    /// <summary>At start, the deadline of one call that checks a parameter-server shard answers (within <see cref="StartTimeoutMs"/> in all), in ms.</summary>
    public int StartProbeTimeoutMs { get; set; } = DefaultStartProbeTimeoutMs;

    /// <summary>The deadline of a pool worker's announcement to the parameter server, in ms.</summary>
    public int AnnounceTimeoutMs { get; set; } = DefaultAnnounceTimeoutMs;

    /// <summary>Names this worker to the parameter server; defaults to host name and process id.</summary>
    public string? WorkerId { get; set; }

    public const int DefaultMaxStaleness = 16;

    public const double DefaultMaxUpdateNorm = 1_000;

    /// <summary>
    /// On the parameter server: a push whose base is more than this many versions behind the shard is
    /// refused (FAILED_PRECONDITION): the worker pulls first (bounded staleness).
    /// </summary>
    public int MaxStaleness { get; set; } = DefaultMaxStaleness;

    /// <summary>On the parameter server: a push whose L2 norm exceeds this is refused (INVALID_ARGUMENT) and counted.</summary>
    public double MaxUpdateNorm { get; set; } = DefaultMaxUpdateNorm;
}

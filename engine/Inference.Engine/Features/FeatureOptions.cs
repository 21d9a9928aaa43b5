using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>The features stage and its device executor, section <c>Inference:Features</c>.</summary>
public sealed class FeatureOptions
{
    public const string Section = "Inference:Features";

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

    public const long DefaultMaxFutureMs = 300_000;

    /// <summary>
    /// Events dated more than this ahead of the wall clock are set aside (<c>future_timestamp</c>) rather
    /// than applied: one event from a broken clock must not become "now" for every entity. 0 takes any time.
    /// </summary>
    public long MaxFutureMs { get; set; } = DefaultMaxFutureMs;

    /// <summary>The newest event time taken now: <paramref name="time"/>'s wall clock plus <see cref="MaxFutureMs"/> (no limit when 0).</summary>
    public static long LatestEventTimeMs(TimeProvider time, long maxFutureMs) =>
        maxFutureMs <= 0 ? long.MaxValue : time.GetUtcNow().ToUnixTimeMilliseconds() + maxFutureMs;

    public AcceleratorKind Accelerator { get; set; } = AcceleratorKind.Auto;

    /// <summary>Event count, mean amount and 1-hour decayed amount, log-scaled: the engine's features when none are declared.</summary>
    public static List<FeatureDefinition> DefaultDefinitions() =>
    [
        new() { Name = "count", Aggregation = Aggregation.Count, Transform = FeatureTransform.SignedLog1p },
        new() { Name = "amount_mean", Aggregation = Aggregation.Mean, Field = "amount", Transform = FeatureTransform.SignedLog1p },
        new() { Name = "amount_decayed_1h", Aggregation = Aggregation.DecayedSum, Field = "amount", HalfLifeMs = 3_600_000, Transform = FeatureTransform.SignedLog1p },
    ];
}

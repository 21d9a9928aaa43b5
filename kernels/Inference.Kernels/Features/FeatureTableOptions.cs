namespace Inference.Kernels.Features;

/// <summary>Sizes of a <see cref="FeatureTable"/>.</summary>
public sealed class FeatureTableOptions
{
    public const int DefaultInitialCapacity = 65_536;
    public const int DefaultMaxCapacity = 1_000_000;
    public const int DefaultMaxBatchEvents = 8_192;
    public const int DefaultMaxGatherRows = 4_096;
    public const double DefaultEvictionFraction = 1.0 / 16;

    /// <summary>Entity slots allocated at start; the table doubles up to <see cref="MaxCapacity"/>.</summary>
    public int InitialCapacity { get; set; } = DefaultInitialCapacity;

    /// <summary>The most entities held; beyond it the idlest are evicted.</summary>
    public int MaxCapacity { get; set; } = DefaultMaxCapacity;

    public int MaxBatchEvents { get; set; } = DefaultMaxBatchEvents;

    public int MaxGatherRows { get; set; } = DefaultMaxGatherRows;

    /// <summary>When full, evict at least this fraction of the capacity at once, so eviction stays rare.</summary>
    public double EvictionFraction { get; set; } = DefaultEvictionFraction;
}

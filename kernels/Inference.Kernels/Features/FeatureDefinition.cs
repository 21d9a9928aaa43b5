namespace Inference.Kernels.Features;

/// <summary>How a feature aggregates its entity's events.</summary>
public enum Aggregation
{
    /// <summary>Events applied.</summary>
    Count,

    /// <summary>Sum of the field.</summary>
    Sum,

    /// <summary>Sum of the field over the event count.</summary>
    Mean,

    Min,
    Max,

    /// <summary>The field of the event with the newest event time (not the last to arrive); ties take the larger value.</summary>
    Last,

    /// <summary>Milliseconds from the entity's newest event to the read time.</summary>
    TimeSinceLast,

    /// <summary>Σ value · 2^(−age / half-life), age by event time; independent of arrival order.</summary>
    DecayedSum,

    /// <summary>Decayed sum of the field over the decayed event count.</summary>
    DecayedMean,

    /// <summary>Events in the sliding window (bucket-aligned) ending at the read time.</summary>
    WindowCount,

    WindowSum,
    WindowMean,

    /// <summary>Distinct values of a key field, estimated with HyperLogLog.</summary>
    DistinctCount,

    /// <summary>One feature over another (both non-ratio); the default when the denominator is 0.</summary>
    Ratio,
}

/// <summary>How a feature's value is transformed before it reaches the model.</summary>
public enum FeatureTransform
{
    None,

    /// <summary>sign(x) · log(1 + |x|): tames heavy-tailed sums and counts.</summary>
    SignedLog1p,
}

/// <summary>One declared feature. Which settings apply depends on the aggregation; see <see cref="FeaturePlan"/>.</summary>
public sealed class FeatureDefinition
{
    public const int DefaultBuckets = 12;
    public const int DefaultPrecision = 10;
    public const int MinPrecision = 4;
    public const int MaxPrecision = 16;

    public string Name { get; set; } = "";

    public Aggregation Aggregation { get; set; }

    /// <summary>The event field aggregated (numeric; a key field for DistinctCount). Not used by Count, TimeSinceLast, Ratio.</summary>
    public string? Field { get; set; }

    /// <summary>DecayedSum and DecayedMean: the half-life by event time.</summary>
    public double HalfLifeMs { get; set; }

    /// <summary>Window*: the window length; it must be a whole number of buckets.</summary>
    public long HorizonMs { get; set; }

    /// <summary>Window*: buckets per horizon (the window slides one bucket at a time).</summary>
    public int Buckets { get; set; } = DefaultBuckets;

    /// <summary>Window*: how far behind the entity's newest event an event may be and still count.</summary>
    public long AllowedLatenessMs { get; set; }

    /// <summary>DistinctCount: HyperLogLog precision p (2^p registers; standard error 1.04/√2^p).</summary>
    public int Precision { get; set; } = DefaultPrecision;

    /// <summary>Ratio: the numerator and denominator feature names.</summary>
    public string? Numerator { get; set; }

    public string? Denominator { get; set; }

    /// <summary>The value of an entity that has none (never seen, no event in the window, a zero denominator).</summary>
    public double Default { get; set; }

    public FeatureTransform Transform { get; set; } = FeatureTransform.None;

    public bool IsWindowed => Aggregation is Aggregation.WindowCount or Aggregation.WindowSum or Aggregation.WindowMean;

    public bool UsesNumericField => Aggregation is Aggregation.Sum or Aggregation.Mean or Aggregation.Min or Aggregation.Max
        or Aggregation.Last or Aggregation.DecayedSum or Aggregation.DecayedMean or Aggregation.WindowSum or Aggregation.WindowMean;

    public bool UsesKeyField => Aggregation == Aggregation.DistinctCount;
}

/// <summary>A feature declaration that cannot work; the message names the feature and the setting.</summary>
public sealed class FeatureDefinitionException(string message) : Exception(message);

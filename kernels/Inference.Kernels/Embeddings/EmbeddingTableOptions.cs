namespace Inference.Kernels.Embeddings;

/// <summary>The shape and limits of one embedding table (one id input).</summary>
public sealed record EmbeddingTableOptions
{
    /// <summary>Values per row.</summary>
    public int Dimension { get; init; } = 16;

    /// <summary>Rows allocated at start, the shared default row included.</summary>
    public int InitialCapacity { get; init; } = 1_024;

    /// <summary>Rows the table may grow to (by doubling); beyond it the idlest rows are evicted.</summary>
    public int MaxCapacity { get; init; } = 1 << 20;

    /// <summary>Ids per learning or read call.</summary>
    public int MaxBatchIds { get; init; } = 4_096;

    /// <summary>Times an id is learned from before it gets a row of its own; until then it reads the default row.</summary>
    public int MinCount { get; init; } = 1;

    /// <summary>A new row's values are drawn uniformly from [−InitScale, InitScale], by a hash of its id (the same on every node).</summary>
    public float InitScale { get; init; } = 0.01f;

    /// <summary>The share of the capacity evicted at once when the table is full.</summary>
    public double EvictionFraction { get; init; } = 0.05;

    /// <summary>Ids known (with or without a row) before the idlest ids without a row are forgotten: a multiple of the capacity.</summary>
    public int PendingIdsPerRow { get; init; } = 4;

    public SparseOptimizer Optimizer { get; init; } = new();
}

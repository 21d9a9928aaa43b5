using Inference.Kernels.Features;

namespace Inference.Kernels.Embeddings;

/// <summary>One bucket of the id → row table: key 0 is empty, <see cref="FeatureTable.Tombstone"/> forgotten.</summary>
internal struct IdEntry
{
    public ulong Key;

    /// <summary>The newest time the id was learned from.</summary>
    public long LastMs;

    /// <summary>The id's row plus one: 0 while it has none (the cleared value), −1 while a thread claims one.</summary>
    public int RowPlusOne;

    /// <summary>Times the id was learned from.</summary>
    public int Count;
}

internal struct IdHashView
{
    public Column<IdEntry> Entries;
    public int Mask;
}

/// <summary>The rows: values (row-major, <see cref="Dimension"/> each) and the optimizer's state (per row, <see cref="StateWidth"/> blocks of a dimension).</summary>
internal struct RowsView
{
    public Column<float> Values;
    public Column<float> State;
    public Column<int> FreeList;
    public Column<int> FreeTop;
    public int Dimension;
    public int StateWidth;
}

/// <summary>The ids of one call and what the kernels find for them.</summary>
internal struct IdBatchView
{
    public Column<ulong> Keys;
    public Column<int> Bucket;
    public Column<int> Rows;
    public Column<int> Counters;  // [0]: ids new to the table
    public Column<float> Output;  // gathered values, Count × dimension
    public int Count;
    public long NowMs;
    public int MinCount;
}

/// <summary>A mini-batch's gradient, grouped by row: the rows touched, and for each the batch positions that touched it.</summary>
internal struct GradientView
{
    public Column<int> Rows;
    public Column<int> Offsets;
    public Column<int> Positions;
    public Column<float> Gradients;
    public int Unique;
}

/// <summary>The optimizer's settings and the new rows' initial values, as the kernels read them.</summary>
internal struct OptimizerView
{
    public int Kind;
    public float LearningRate;
    public float InitialAccumulator;
    public float Beta;
    public float L1;
    public float L2;
    public float InitScale;
}

/// <summary>Buckets to forget (the host chose them), or a cutoff time.</summary>
internal struct ForgetView
{
    public Column<int> Buckets;
    public Column<int> Counters;  // [0]: ids forgotten, [1]: rows freed
    public int Count;
    public long CutoffMs;
}

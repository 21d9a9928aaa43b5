using Inference.Engine.Features;

namespace Inference.Engine.Outputs;

/// <summary>
/// The selected events of one applied micro-batch with their entities' features read from the state
/// the batch produced, handed from the device executor to the stream scorer.
/// </summary>
internal sealed class ScoredBatch(int rows, int width, bool raw, int entityBytes, int embeddingWidth = 0)
{
    public int Rows { get; } = rows;

    /// <summary>The entity keys as sent, UTF-8, back to back: key i ends at <see cref="EntityEnds"/>[i].</summary>
    public byte[] EntityBytes { get; } = new byte[entityBytes];

    public int[] EntityEnds { get; } = new int[rows];

    public int[] Partitions { get; } = new int[rows];

    public long[] Offsets { get; } = new long[rows];

    public int[] Indexes { get; } = new int[rows];

    public long[] TimestampsMs { get; } = new long[rows];

    public long[] EventTimesMs { get; } = new long[rows];

    /// <summary>Model inputs (transformed features), rows × width.</summary>
    public float[] Features { get; } = new float[rows * width];

    /// <summary>A model over ids: each row's embeddings (rows × the inputs' dimensions together), read with its features; else empty.</summary>
    public float[] Embeddings { get; } = new float[rows * embeddingWidth];

    /// <summary>A model over ids: each row's ids as scored (Entity and LastOf values), rows × id inputs; else empty.</summary>
    public ulong[] Ids { get; set; } = [];

    /// <summary>Untransformed feature values when an alert rule reads one, else empty.</summary>
    public float[] Raw { get; } = raw ? new float[rows * width] : [];

    public required FeatureWatermark Watermark { get; init; }

    public required string Topic { get; init; }

    public ReadOnlySpan<byte> Entity(int i)
    {
        int start = i == 0 ? 0 : EntityEnds[i - 1];
        return EntityBytes.AsSpan(start, EntityEnds[i] - start);
    }
}

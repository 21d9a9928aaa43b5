namespace Inference.Engine.Features;

/// <summary>The last offset applied from one partition.</summary>
public readonly record struct PartitionOffset(string Topic, int Partition, long Offset);

/// <summary>
/// How fresh the features are: per partition the last applied offset, the newest event time applied
/// and the batches applied. Immutable; the feature store swaps in a new one after each batch.
/// </summary>
public sealed class FeatureWatermark
{
    public static readonly FeatureWatermark Empty = new([], 0, 0);

    public FeatureWatermark(IReadOnlyList<PartitionOffset> partitions, long maxEventTimeMs, long batchesApplied)
    {
        Partitions = partitions;
        MaxEventTimeMs = maxEventTimeMs;
        BatchesApplied = batchesApplied;
    }

    public IReadOnlyList<PartitionOffset> Partitions { get; }

    public long MaxEventTimeMs { get; }

    public long BatchesApplied { get; }

    /// <summary>The watermark as sent with responses: built once per applied batch, shared by every response that reads it.</summary>
    internal Proto.V1.FeatureWatermark Message => _message ??= BuildMessage();

    private Proto.V1.FeatureWatermark? _message;

    private Proto.V1.FeatureWatermark BuildMessage()
    {
        var message = new Proto.V1.FeatureWatermark { MaxEventTimeMs = MaxEventTimeMs, BatchesApplied = BatchesApplied };
        foreach (var partition in Partitions)
        {
            message.Partitions.Add(new Proto.V1.PartitionWatermark { Topic = partition.Topic, Partition = partition.Partition, LastAppliedOffset = partition.Offset });
        }
        return message;
    }

    /// <summary>The last offset applied from a partition, or -1 when none.</summary>
    public long LastApplied(string topic, int partition)
    {
        foreach (var offset in Partitions)
        {
            if (offset.Partition == partition && offset.Topic == topic)
            {
                return offset.Offset;
            }
        }
        return -1;
    }

    /// <summary>True when every partition of <paramref name="minimum"/> is applied at least up to its offset.</summary>
    public bool Covers(IReadOnlyList<PartitionOffset> minimum)
    {
        foreach (var required in minimum)
        {
            if (LastApplied(required.Topic, required.Partition) < required.Offset)
            {
                return false;
            }
        }
        return true;
    }

    internal FeatureWatermark Advance(ReadOnlySpan<PartitionOffset> applied, long maxEventTimeMs)
    {
        var partitions = new List<PartitionOffset>(Partitions);
        foreach (var offset in applied)
        {
            int index = partitions.FindIndex(p => p.Partition == offset.Partition && p.Topic == offset.Topic);
            if (index < 0)
            {
                partitions.Add(offset);
            }
            else if (offset.Offset > partitions[index].Offset)
            {
                partitions[index] = offset;
            }
        }
        partitions.Sort((a, b) => a.Topic == b.Topic ? a.Partition.CompareTo(b.Partition) : string.CompareOrdinal(a.Topic, b.Topic));
        return new FeatureWatermark(partitions, Math.Max(MaxEventTimeMs, maxEventTimeMs), BatchesApplied + 1);
    }
}

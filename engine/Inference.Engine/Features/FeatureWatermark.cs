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
        _partitions = partitions as PartitionOffset[] ?? [.. partitions];
        MaxEventTimeMs = maxEventTimeMs;
        BatchesApplied = batchesApplied;
    }

    private readonly PartitionOffset[] _partitions;

    public IReadOnlyList<PartitionOffset> Partitions => _partitions;

    public long MaxEventTimeMs { get; }

    public long BatchesApplied { get; }

    /// <summary>The watermark as sent with responses: built once per applied batch, shared by every response that reads it.</summary>
    internal Proto.V1.FeatureWatermark Message => _message ??= BuildMessage();

    private Proto.V1.FeatureWatermark? _message;

    private Proto.V1.FeatureWatermark BuildMessage()
    {
        var message = new Proto.V1.FeatureWatermark { MaxEventTimeMs = MaxEventTimeMs, BatchesApplied = BatchesApplied };
        foreach (var partition in _partitions)
        {
            message.Partitions.Add(new Proto.V1.PartitionWatermark { Topic = partition.Topic, Partition = partition.Partition, LastAppliedOffset = partition.Offset });
        }
        return message;
    }

    /// <summary>The last offset applied from a partition, or -1 when none.</summary>
    public long LastApplied(string topic, int partition)
    {
        foreach (var offset in _partitions)
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
        for (int i = 0; i < minimum.Count; i++)
        {
            var required = minimum[i];
            if (LastApplied(required.Topic, required.Partition) < required.Offset)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// The watermark after a batch: one new sorted array (partitions by topic, then number), the only
    /// allocation of a batch's bookkeeping; no per-partition objects.
    /// </summary>
    internal FeatureWatermark Advance(ReadOnlySpan<PartitionOffset> applied, long maxEventTimeMs)
    {
        int added = 0;
        foreach (var offset in applied)
        {
            added += IndexOf(_partitions, offset) < 0 ? 1 : 0;
        }
        var partitions = new PartitionOffset[_partitions.Length + added];
        _partitions.CopyTo(partitions, 0);
        int count = _partitions.Length;
        foreach (var offset in applied)
        {
            int index = IndexOf(partitions.AsSpan(0, count), offset);
            if (index < 0)
            {
                partitions[count++] = offset;
            }
            else if (offset.Offset > partitions[index].Offset)
            {
                partitions[index] = offset;
            }
        }
        if (added > 0)
        {
            System.Array.Sort(partitions, ByPartition.Instance);
        }
        return new FeatureWatermark(partitions, Math.Max(MaxEventTimeMs, maxEventTimeMs), BatchesApplied + 1);
    }

    private static int IndexOf(ReadOnlySpan<PartitionOffset> partitions, PartitionOffset offset)
    {
        for (int i = 0; i < partitions.Length; i++)
        {
            if (partitions[i].Partition == offset.Partition && partitions[i].Topic == offset.Topic)
            {
                return i;
            }
        }
        return -1;
    }

    private sealed class ByPartition : IComparer<PartitionOffset>
    {
        public static readonly ByPartition Instance = new();

        public int Compare(PartitionOffset a, PartitionOffset b) =>
            a.Topic == b.Topic ? a.Partition.CompareTo(b.Partition) : string.CompareOrdinal(a.Topic, b.Topic);
    }
}

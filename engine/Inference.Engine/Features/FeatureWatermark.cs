using Inference.Engine.Kafka;

namespace Inference.Engine.Features;

/// <summary>
/// How fresh the features are: per partition the last applied offset, the newest event time applied
/// and the batches applied. An immutable snapshot, taken by the device executor when it is read.
/// </summary>
internal sealed class FeatureWatermark
{
    public static readonly FeatureWatermark Empty = new([], 0, 0);
    private readonly PartitionOffset[] _partitions;
    private readonly Predicate<PartitionOffset>? _served;
    private Proto.V1.FeatureWatermark? _message;

    // served: which partitions responses list (the owned ones in a pool); all when null.
    public FeatureWatermark(IReadOnlyList<PartitionOffset> partitions, long maxEventTimeMs, long batchesApplied, Predicate<PartitionOffset>? served = null)
    {
        _partitions = partitions as PartitionOffset[] ?? [.. partitions];
        _served = served;
        MaxEventTimeMs = maxEventTimeMs;
        BatchesApplied = batchesApplied;
    }

    public IReadOnlyList<PartitionOffset> Partitions => _partitions;

    public long MaxEventTimeMs { get; }

    public long BatchesApplied { get; }

    /// <summary>The watermark as sent with responses: built once per applied batch, shared by every response that reads it.</summary>
    internal Proto.V1.FeatureWatermark Message => _message ??= BuildMessage();

    private Proto.V1.FeatureWatermark BuildMessage()
    {
        var message = new Proto.V1.FeatureWatermark { MaxEventTimeMs = MaxEventTimeMs, BatchesApplied = BatchesApplied };
        AddTo(message.Partitions, _served is null ? _partitions : _partitions.Where(p => _served(p)));
        return message;
    }

    /// <summary>Partition offsets as the protocol carries them (responses, ingest acks).</summary>
    internal static void AddTo(Google.Protobuf.Collections.RepeatedField<Proto.V1.PartitionWatermark> target, IEnumerable<PartitionOffset> offsets)
    {
        foreach (var offset in offsets)
        {
            target.Add(new Proto.V1.PartitionWatermark { Topic = offset.Topic, Partition = offset.Partition, LastAppliedOffset = offset.Offset });
        }
    }

    /// <summary>True when every partition of <paramref name="minimum"/> is applied at least up to its offset.</summary>
    public bool Covers(IReadOnlyList<PartitionOffset> minimum) => Covers(_partitions, minimum);

    /// <summary>The last offset applied from a partition; -1 for none.</summary>
    public long OffsetOf(string topic, int partition) => IndexOf(_partitions, topic, partition) is int index and >= 0 ? _partitions[index].Offset : -1;

    /// <summary>True when <paramref name="held"/> reaches, in every partition of <paramref name="minimum"/>, at least its offset.</summary>
    internal static bool Covers(ReadOnlySpan<PartitionOffset> held, IReadOnlyList<PartitionOffset> minimum)
    {
        for (int i = 0; i < minimum.Count; i++)
        {
            int index = IndexOf(held, minimum[i].Topic, minimum[i].Partition);
            if (index < 0 || held[index].Offset < minimum[i].Offset)
            {
                return false;
            }
        }
        return true;
    }

    internal static int IndexOf(ReadOnlySpan<PartitionOffset> partitions, string topic, int partition)
    {
        for (int i = 0; i < partitions.Length; i++)
        {
            if (partitions[i].Partition == partition && partitions[i].Topic == topic)
            {
                return i;
            }
        }
        return -1;
    }
}

/// <summary>
/// The applied state's watermark as the device executor advances it, batch after batch, in place
/// (no allocation per batch once every partition has been seen); immutable
/// <see cref="FeatureWatermark"/> snapshots are taken only when someone reads.
/// </summary>
internal sealed class WatermarkBuilder
{
    private PartitionOffset[] _partitions = new PartitionOffset[16];
    private int _count;
    private long _maxEventTimeMs;
    private long _batches;

    public long MaxEventTimeMs => _maxEventTimeMs;

    /// <summary>Starts over from <paramref name="watermark"/> (a restored checkpoint's).</summary>
    public void Restore(FeatureWatermark watermark)
    {
        _count = 0;
        _maxEventTimeMs = 0;
        Advance([.. watermark.Partitions], watermark.MaxEventTimeMs);
        _batches = watermark.BatchesApplied;
    }

    public void Advance(ReadOnlySpan<PartitionOffset> applied, long maxEventTimeMs)
    {
        foreach (var offset in applied)
        {
            int index = FeatureWatermark.IndexOf(_partitions.AsSpan(0, _count), offset.Topic, offset.Partition);
            if (index >= 0)
            {
                if (offset.Offset > _partitions[index].Offset)
                {
                    _partitions[index] = offset;
                }
                continue;
            }
            if (_count == _partitions.Length)
            {
                System.Array.Resize(ref _partitions, _count * 2);
            }
            // Kept sorted by topic, then partition: insert in place.
            int at = _count;
            while (at > 0 && Compare(_partitions[at - 1], offset) > 0)
            {
                _partitions[at] = _partitions[at - 1];
                at--;
            }
            _partitions[at] = offset;
            _count++;
        }
        _maxEventTimeMs = Math.Max(_maxEventTimeMs, maxEventTimeMs);
        _batches++;
    }

    /// <summary>True when every partition of <paramref name="minimum"/> is applied at least up to its offset.</summary>
    public bool Covers(IReadOnlyList<PartitionOffset> minimum) => FeatureWatermark.Covers(_partitions.AsSpan(0, _count), minimum);

    /// <summary>Forgets <paramref name="partitions"/> of <paramref name="topic"/> (their entities left this worker).</summary>
    public void Remove(string topic, IReadOnlySet<int> partitions)
    {
        int kept = 0;
        for (int i = 0; i < _count; i++)
        {
            if (_partitions[i].Topic != topic || !partitions.Contains(_partitions[i].Partition))
            {
                _partitions[kept++] = _partitions[i];
            }
        }
        _count = kept;
    }

    public FeatureWatermark Snapshot(Predicate<PartitionOffset>? served = null) => new(_partitions.AsSpan(0, _count).ToArray(), _maxEventTimeMs, _batches, served);

    private static int Compare(PartitionOffset a, PartitionOffset b) =>
        a.Topic == b.Topic ? a.Partition.CompareTo(b.Partition) : string.CompareOrdinal(a.Topic, b.Topic);
}

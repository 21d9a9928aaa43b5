using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;

namespace Inference.Engine.Training;

/// <summary>
/// What the labels source follows: the owned events partitions whose feature state here is whole. A
/// partition that just arrived is restored and replayed before its labels are read, so no label is joined
/// with an entity's state that is still missing events (it would learn from features the entity does not
/// have); its labels wait in Kafka meanwhile, nothing is lost.
/// </summary>
internal sealed class WholePartitions(IOwnedPartitions ownership, Func<FeatureWatermark> published, string eventsTopic) : IOwnedPartitions
{
    // The labels source's thread is the only caller: one list reused for every look.
    private readonly List<int> _scratch = [];
    private int[] _whole = [];
    private long _version;

    /// <summary>Changes when the set of whole owned partitions changes.</summary>
    public long Version
    {
        get
        {
            Refresh();
            return Volatile.Read(ref _version);
        }
    }

    public IReadOnlyList<int> Owned
    {
        get
        {
            Refresh();
            return Volatile.Read(ref _whole);
        }
    }

    public bool Serves(PartitionOffset offset) => ownership.Serves(offset);

    public bool IsWhole(int partition, long applied) => ownership.IsWhole(partition, applied);

    private void Refresh()
    {
        var watermark = published();
        _scratch.Clear();
        foreach (int partition in ownership.Owned)
        {
            if (ownership.IsWhole(partition, watermark.OffsetOf(eventsTopic, partition)))
            {
                _scratch.Add(partition);
            }
        }
        if (_scratch.SequenceEqual(_whole))
        {
            return;
        }
        Volatile.Write(ref _whole, [.. _scratch]);
        Interlocked.Increment(ref _version);
    }
}

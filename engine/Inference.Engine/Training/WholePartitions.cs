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
internal sealed class WholePartitions(IOwnedPartitions ownership, FeatureStore features, string eventsTopic) : IOwnedPartitions
{
    private long _ownedVersion = -1;
    private int[] _whole = [];
    private long _version;

    /// <summary>Changes when the owned set changes or another owned partition becomes whole.</summary>
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
        long owned = ownership.Version;
        var watermark = features.Published;
        var partitions = ownership.Owned;
        int count = 0;
        foreach (int partition in partitions)
        {
            count += ownership.IsWhole(partition, watermark.OffsetOf(eventsTopic, partition)) ? 1 : 0;
        }
        // Within one owned set, partitions only become whole: the count tells the sets apart.
        if (owned == _ownedVersion && count == _whole.Length)
        {
            return;
        }
        var whole = new List<int>(count);
        foreach (int partition in partitions)
        {
            if (ownership.IsWhole(partition, watermark.OffsetOf(eventsTopic, partition)))
            {
                whole.Add(partition);
            }
        }
        _ownedVersion = owned;
        Volatile.Write(ref _whole, [.. whole]);
        Interlocked.Increment(ref _version);
    }
}

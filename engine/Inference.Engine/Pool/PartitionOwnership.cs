using Inference.Engine.Ingest;
using Inference.Engine.Kafka;

namespace Inference.Engine.Pool;

/// <summary>
/// The events partitions this worker owns, as its consumer group assigned them: the events source
/// records each assignment and revocation; the labels source follows it (a label meets its entity's
/// features on the worker that holds them), Score's watermark lists only these, and routing publishes them.
/// </summary>
internal sealed class PartitionOwnership : IOwnedPartitions, IAssignmentListener
{
    private readonly Lock _gate = new();
    // Arriving partitions still replaying, with the offset they ended at when they arrived.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, long> _catchUp = new();
    private int[] _owned = [];
    private long _version;

    /// <summary>The events topic the partitions belong to (null before the first assignment).</summary>
    public string? Topic { get; private set; }

    /// <summary>The owned partitions, sorted.</summary>
    public IReadOnlyList<int> Owned => Volatile.Read(ref _owned);

    /// <summary>Bumped at every change.</summary>
    public long Version => Interlocked.Read(ref _version);

    public bool Owns(int partition) => Array.BinarySearch(Volatile.Read(ref _owned), partition) >= 0;

    /// <summary>Whether a watermark entry is served: any other topic's, and the events topic's owned partitions.</summary>
    public bool Serves(PartitionOffset offset) => offset.Topic != Topic || Owns(offset.Partition);

    public bool IsWhole(int partition, long applied) => Owns(partition) && !CatchingUp(partition, applied, out _);

    public void Assigned(string topic, IEnumerable<int> partitions) => Change(topic, owned => owned.Union(partitions));

    public void Revoked(string topic, IEnumerable<int> partitions)
    {
        foreach (int partition in partitions)
        {
            _catchUp.TryRemove(partition, out _);
        }
        Change(topic, owned => owned.Except(partitions));
    }

    /// <summary>
    /// An arriving partition is restored and replayed up to <paramref name="lastOffset"/> (where it ended
    /// when it arrived): until the applied state holds that offset its rows are answered from state that
    /// is not whole.
    /// </summary>
    public void CatchUp(int partition, long lastOffset) => _catchUp[partition] = lastOffset;

    /// <summary>Partitions about to be assigned: catching up until their targets are known.</summary>
    public void Arriving(IEnumerable<int> partitions)
    {
        foreach (int partition in partitions)
        {
            _catchUp[partition] = long.MaxValue;
        }
    }

    /// <summary>An arrived partition with nothing to catch up on (or an end that could not be learned).</summary>
    public void CaughtUp(int partition) => _catchUp.TryRemove(partition, out _);

    /// <summary>
    /// Whether rows of an owned <paramref name="partition"/> are answered from state still being restored or
    /// replayed, given the offset applied from it (-1: none); the target is forgotten once reached. The target,
    /// when catching up, is returned in <paramref name="target"/>.
    /// </summary>
    public bool CatchingUp(int partition, long applied, out long target)
    {
        if (!_catchUp.TryGetValue(partition, out target))
        {
            return false;
        }
        if (applied >= target)
        {
            _catchUp.TryRemove(new KeyValuePair<int, long>(partition, target));
            return false;
        }
        return true;
    }

    private void Change(string topic, Func<IEnumerable<int>, IEnumerable<int>> change)
    {
        lock (_gate)
        {
            Topic = topic;
            Volatile.Write(ref _owned, [.. change(_owned).Distinct().Order()]);
            Interlocked.Increment(ref _version);
        }
    }
}

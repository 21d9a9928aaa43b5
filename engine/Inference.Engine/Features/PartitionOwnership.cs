namespace Inference.Engine.Features;

/// <summary>
/// The events partitions this worker owns, as its consumer group assigned them: the events source
/// records each assignment and revocation; the labels source follows it (a label meets its entity's
/// features on the worker that holds them), Score's watermark lists only these, and routing publishes them.
/// </summary>
public sealed class PartitionOwnership
{
    private readonly Lock _gate = new();
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

    internal void Assigned(string topic, IEnumerable<int> partitions) => Change(topic, owned => owned.Union(partitions));

    internal void Revoked(string topic, IEnumerable<int> partitions) => Change(topic, owned => owned.Except(partitions));

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

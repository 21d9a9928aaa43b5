using Inference.Engine.Kafka;

namespace Inference.Engine.Ingest;

/// <summary>
/// The events partitions this node owns, as its consumer group assigned them (every partition on a
/// single node, a share of them in a pool): what the labels source follows and what Score's watermark lists.
/// </summary>
internal interface IOwnedPartitions
{
    /// <summary>Changes each time the owned set changes.</summary>
    long Version { get; }

    /// <summary>The owned partitions of the events topic, in order.</summary>
    IReadOnlyList<int> Owned { get; }

    /// <summary>True for a position of another topic, or of an owned partition of the events topic.</summary>
    bool Serves(PartitionOffset offset);

    /// <summary>
    /// Whether an owned partition's state here is whole, given the offset applied from it (-1: none): not
    /// still being restored or replayed after it arrived.
    /// </summary>
    bool IsWhole(int partition, long applied);
}

/// <summary>What the events source reports as its consumer group moves partitions (the pool's ownership records it).</summary>
internal interface IAssignmentListener
{
    /// <summary>Partitions about to be assigned, before their state is handed over.</summary>
    void Arriving(IEnumerable<int> partitions);

    void Assigned(string topic, IEnumerable<int> partitions);

    void Revoked(string topic, IEnumerable<int> partitions);

    /// <summary>A partition whose state is replayed up to <paramref name="lastOffset"/> before it is whole here.</summary>
    void CatchUp(int partition, long lastOffset);

    void CaughtUp(int partition);
}

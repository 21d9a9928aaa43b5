namespace Inference.Engine.Ingest;

/// <summary>How a pool worker's events source hands partitions' state over as its consumer group moves them.</summary>
internal interface IPartitionHandoff
{
    /// <summary>
    /// Partitions assigned to this worker, each with the last offset its state holds (-1: none); returns the
    /// last offset held per partition afterwards (-1: nothing, read it from the start). <paramref name="notOwned"/>:
    /// partitions whose entities this worker holds from its own checkpoint but was not given (dropped).
    /// </summary>
    IReadOnlyDictionary<int, long> Arrive(IReadOnlyList<(int Partition, long Held)> arriving, IReadOnlyList<int> notOwned);

    /// <summary>Partitions taken from this worker (what was read from them is applied): checkpointed for their next owner, then dropped.</summary>
    void Leave(IReadOnlyList<int> partitions);
}

using Inference.Engine.Kafka;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Ingest;

/// <summary>
/// Where a consumer meets the checkpoints: where the checkpoint the engine started from left its topic,
/// the report that it replayed up to where the topic ended at start, and the registration that makes its
/// commits follow checkpoints.
/// </summary>
internal interface IConsumerCheckpoints
{
    /// <summary>True when checkpoints are on: commits wait for a checkpoint that covers them.</summary>
    bool Enabled { get; }

    /// <summary>The positions in <paramref name="topic"/> the restored checkpoint includes (empty: none).</summary>
    IReadOnlyList<PartitionOffset> Restored(string topic);

    void CaughtUp(string topic, ILogger logger);

    /// <summary>
    /// In a pool with checkpoints: the newest position in <paramref name="topic"/>'s <paramref name="partition"/>
    /// that any worker's checkpoint holds (the last offset its state includes), or null where none holds one.
    /// </summary>
    long? NewestInPool(string topic, int partition);

    void Register(ICheckpointedSource source);

    void Unregister(ICheckpointedSource source);
}

/// <summary>How far behind the end of its partitions a consumer may be and still count as caught up (<c>Inference:Serving:ReadyLagEvents</c>).</summary>
internal sealed record ConsumerReadiness(long CaughtUpWithinEvents);

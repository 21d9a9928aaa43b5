using Inference.Engine.Kafka;

namespace Inference.Engine.Ingest;

/// <summary>What a <see cref="KafkaBatchSource{TSink}"/> reads and how it reports.</summary>
internal sealed class BatchSourceSettings
{
    public required string Topic { get; init; }

    /// <summary>Tell the sink each message's partition, offset and timestamp before it decodes it (stream scoring).</summary>
    public bool TracksPositions { get; init; }

    public required string GroupId { get; init; }

    /// <summary>Where malformed messages are set aside; empty: counted and dropped.</summary>
    public string DeadLetterTopic { get; init; } = "";

    /// <summary>The format of messages without a content-type header.</summary>
    public EventFormat DefaultFormat { get; init; } = EventFormat.Json;

    /// <summary>A batch closes this long after its first message at the latest.</summary>
    public required int MaxBatchDelayMs { get; init; }

    /// <summary>Called with the reason for each message set aside.</summary>
    public required Action<string> Malformed { get; init; }

    /// <summary>Called with the consumer lag twice a second, when given.</summary>
    public Action<long>? Lag { get; init; }

    /// <summary>Called with each assigned partition's lag just before <see cref="Lag"/>, when given.</summary>
    public Action<int, long>? PartitionLag { get; init; }

    /// <summary>Called for each message read again that the state already holds (skipped, never counted twice).</summary>
    public Action? Replayed { get; init; }

    /// <summary>Called when librdkafka reset an offset because the broker no longer had the data.</summary>
    public Action? DataLoss { get; init; }

    /// <summary>
    /// Per partition, the last offset the state already holds (restored from a checkpoint): the first
    /// assignment of such a partition starts right after it, and anything at or below it read again is skipped.
    /// </summary>
    public IReadOnlyList<PartitionOffset> Resume { get; init; } = [];

    /// <summary>
    /// True: offsets are committed only when a durable checkpoint covers them (<see cref="KafkaBatchSource{TSink}.CommitCheckpointed"/>),
    /// never as batches are applied.
    /// </summary>
    public bool CommitsFollowCheckpoints { get; init; }

    /// <summary>Called once, when every partition of the first assignment has been read and applied up to where it ended at that time.</summary>
    public Action? CaughtUp { get; init; }

    /// <summary>How far behind those ends (events summed over partitions) still counts as caught up.</summary>
    public long CaughtUpWithin { get; init; }

    /// <summary>In a pool: hands partitions' state over as the group moves them (the events source).</summary>
    public IPartitionHandoff? Handoff { get; init; }

    /// <summary>Where this source records the partitions its group assigns it (the events source).</summary>
    public IAssignmentListener? Publishes { get; init; }

    /// <summary>
    /// Instead of joining a group's assignment, read exactly the partitions of this topic with the numbers
    /// of those owned (the labels source follows the events source: co-partitioned topics).
    /// </summary>
    public IOwnedPartitions? Follows { get; init; }

    /// <summary>
    /// Follow mode in a pool: where a partition taken up starts when the restored checkpoint does not say, as
    /// the last offset already read (the newest any worker's checkpoint holds); null: the committed offset.
    /// </summary>
    public Func<int, long?>? ArrivingFrom { get; init; }
}

using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Pool;
using Inference.Engine.Training;

namespace Inference.Engine.Tests;

/// <summary>The labels source follows the owned partitions whose feature state is whole, and only those.</summary>
public sealed class WholePartitionsTests
{
    [Fact]
    public void An_arriving_partition_is_followed_once_its_state_reaches_where_it_ended_and_a_revoked_one_at_once_no_more()
    {
        var ownership = new PartitionOwnership();
        var applied = new Dictionary<int, long>();
        FeatureWatermark Published() => new([.. applied.Select(p => new PartitionOffset("events", p.Key, p.Value))], 0, 0);
        var labels = new WholePartitions(ownership, Published, "events");

        ownership.Assigned("events", [0, 1]);
        Assert.Equal([0, 1], labels.Owned);
        long version = labels.Version;
        Assert.Equal(version, labels.Version);

        // Partition 2 arrives: not followed while its restore starts, nor while it replays up to offset 40.
        ownership.Arriving([2]);
        ownership.Assigned("events", [2]);
        Assert.Equal([0, 1], labels.Owned);
        ownership.CatchUp(2, lastOffset: 40);
        applied[2] = 39;
        Assert.Equal([0, 1], labels.Owned);
        Assert.Equal(version, labels.Version);
        applied[2] = 40;
        Assert.Equal([0, 1, 2], labels.Owned);
        Assert.NotEqual(version, labels.Version);
        version = labels.Version;

        // Whole stays whole as the partition goes on; a revoked partition is dropped at once.
        applied[2] = 41;
        Assert.Equal([0, 1, 2], labels.Owned);
        Assert.Equal(version, labels.Version);
        ownership.Revoked("events", [0]);
        Assert.Equal([1, 2], labels.Owned);
        Assert.NotEqual(version, labels.Version);

        // A partition with nothing to catch up on is followed as soon as it is assigned.
        ownership.Arriving([5]);
        ownership.CaughtUp(5);
        ownership.Assigned("events", [5]);
        Assert.Equal([1, 2, 5], labels.Owned);
    }
}

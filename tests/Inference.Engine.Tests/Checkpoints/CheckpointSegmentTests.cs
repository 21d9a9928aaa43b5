using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Testing;

namespace Inference.Engine.Tests;

/// <summary>A pool's checkpoints: entities written one file per events partition, read back a partition's share at a time.</summary>
public sealed class CheckpointSegmentTests : IDisposable
{
    private const int Partitions = 6;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "inference-segments-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void A_new_owner_reads_and_verifies_only_the_files_of_its_partitions()
    {
        var plan = new FeaturePlan(FeatureSelfCheck.AllAggregations());
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = 64, MaxCapacity = 4_096, MaxBatchEvents = 256 });
        var random = new Random(3);
        long now = FeatureSelfCheck.Start;
        for (int b = 0; b < 20; b++)
        {
            table.Apply(MixedBatches.Next(random, plan, 400, 256, ref now));
        }
        var snapshot = table.Snapshot();
        var watermark = new FeatureWatermark([new PartitionOffset("events", 1, 41), new PartitionOffset("events", 4, 44)], now, 20);
        var entry = CheckpointFiles.Write(_directory, new Checkpoint(snapshot, watermark, null, "model", segmentPartitions: Partitions), TimeProvider.System);

        var segments = entry.Manifest!.Table.Segments!;
        Assert.Equal(Partitions, entry.Manifest.Table.SegmentPartitions);
        Assert.Equal(snapshot.Entities, segments.Sum(s => s.Entities));
        Assert.True(segments.Count > 2);

        // Another partition's file damaged: the whole checkpoint no longer reads, these two partitions still do.
        var moving = new HashSet<int> { 1, 4 };
        var other = segments.First(s => !moving.Contains(s.Partition));
        File.WriteAllText(Path.Combine(entry.Path, other.File), "damaged");
        Assert.Throws<InvalidDataException>(() => CheckpointFiles.Read(entry.Path));
        var share = CheckpointFiles.ReadPartitions(entry.Path, moving, Partitions)!;
        Assert.Equal(snapshot.CountIn(moving, Partitions), share.Table.CountIn(moving, Partitions));
        Assert.Equal(share.Table.CountIn(moving, Partitions), share.Table.CountIn(Enumerable.Range(0, Partitions).ToHashSet(), Partitions));
        Assert.Equal(watermark.Partitions, share.Events.Partitions);

        // What it holds is exactly those entities' state: a table taking them reads as the original for them.
        using var taker = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = 16, MaxCapacity = 4_096, MaxBatchEvents = 256 });
        taker.Restore(taker.Snapshot().WithEntitiesOf(share.Table, moving, Partitions));
        var keys = Enumerable.Range(0, 400).Select(e => EntityKey.Hash($"e-{e}")).Where(k => moving.Contains(EntityKey.PartitionOf(k, Partitions))).ToArray();
        var expected = new float[keys.Length * plan.Count];
        var actual = new float[keys.Length * plan.Count];
        table.Gather(keys, now, expected);
        taker.Gather(keys, now, actual);
        Assert.Equal(expected, actual);

        // Not segmented for this partition count: read whole instead.
        Assert.Null(CheckpointFiles.ReadPartitions(entry.Path, moving, Partitions + 1));
    }
}

using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Testing;

namespace Inference.Kernels.Tests;

/// <summary>A table restored from a snapshot holds what the original holds and goes on exactly like it.</summary>
public sealed class SnapshotTests
{
    private const int Entities = 300;

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void A_restored_table_reads_and_goes_on_exactly_like_the_original(AcceleratorKind kind)
    {
        const int Seed = 77;
        var plan = new FeaturePlan(FeatureSelfCheck.AllAggregations());
        using var device = DeviceContext.Create(kind);
        using var original = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = 32, MaxCapacity = 1_000, MaxBatchEvents = 256 });
        using var restored = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = 16, MaxCapacity = 1_000, MaxBatchEvents = 256 });
        var random = new Random(Seed);
        long now = FeatureSelfCheck.Start;
        for (int b = 0; b < 20; b++)
        {
            original.Apply(NextBatch(random, plan, ref now));
        }

        var snapshot = original.Snapshot();
        restored.Restore(snapshot);
        Assert.Equal(original.Entities, restored.Entities);
        Assert.Equal(snapshot.Entities, restored.Entities);
        Assert.Equal(Read(original, plan, now), Read(restored, plan, now));

        for (int b = 0; b < 15; b++)
        {
            var batch = NextBatch(random, plan, ref now);
            var expected = original.Apply(batch);
            var actual = restored.Apply(batch);
            Assert.Equal(expected.Applied, actual.Applied);
        }
        Assert.Equal(original.Entities, restored.Entities);
        Assert.Equal(Read(original, plan, now), Read(restored, plan, now));
    }

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void A_snapshot_restores_on_its_accelerator_and_on_the_cpu_backend_and_partitions_go_and_come_back_exactly(AcceleratorKind kind)
    {
        // The body the GPU check runs on CUDA (bench/Inference.KernelCheck).
        using var device = DeviceContext.Create(kind);
        var (mismatches, entities) = SnapshotSelfCheck.Run(device, seed: 303);
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches));
        Assert.True(entities > 0, "the check compared no entity");
    }

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void A_restore_over_a_growth_in_progress_then_growing_again_keeps_every_entity(AcceleratorKind kind)
    {
        var plan = new FeaturePlan(FeatureSelfCheck.AllAggregations());
        using var device = DeviceContext.Create(kind);
        var options = new FeatureTableOptions { InitialCapacity = 64, MaxCapacity = 2_000, MaxBatchEvents = 256 };
        using var original = new FeatureTable(device, plan, options);
        using var restored = new FeatureTable(device, plan, options);
        var random = new Random(3);
        long now = FeatureSelfCheck.Start;
        for (int b = 0; b < 10; b++)
        {
            original.Apply(NextBatch(random, plan, ref now));
        }
        // As the executor does at start: a growth is under way in the empty table when the checkpoint is restored.
        Assert.True(restored.BeginGrowth(1_000));
        restored.GrowthSlice(16);
        var snapshot = original.Snapshot();
        restored.Restore(snapshot);
        Assert.False(restored.Growing);
        Assert.Equal(original.Entities, restored.Entities);
        // Then growth in slices between applies, as the executor's maintenance runs it.
        Assert.True(restored.BeginGrowth(original.Entities + 512));
        while (!restored.GrowthSlice(100))
        {
        }
        Assert.Equal(original.Entities, restored.Entities);
        Assert.Equal(Read(original, plan, now), Read(restored, plan, now));
        for (int b = 0; b < 10; b++)
        {
            var batch = NextBatch(random, plan, ref now);
            original.Apply(batch);
            restored.Apply(batch);
        }
        Assert.Equal(original.Entities, restored.Entities);
        Assert.Equal(Read(original, plan, now), Read(restored, plan, now));
        var again = restored.Snapshot();
        Assert.Equal(original.Entities, again.Entities);
    }

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Entities_move_between_tables_by_partition_exactly(AcceleratorKind kind)
    {
        const int Partitions = 6;
        var plan = new FeaturePlan(FeatureSelfCheck.AllAggregations());
        var options = new FeatureTableOptions { InitialCapacity = 32, MaxCapacity = 2_000, MaxBatchEvents = 256 };
        using var device = DeviceContext.Create(kind);
        using var whole = new FeatureTable(device, plan, options);
        using var mine = new FeatureTable(device, plan, options);
        var random = new Random(5);
        long now = FeatureSelfCheck.Start;
        for (int b = 0; b < 20; b++)
        {
            whole.Apply(NextBatch(random, plan, ref now));
        }
        var everything = whole.Snapshot();
        var moving = new HashSet<int> { 1, 4 };
        int inMoving = everything.CountIn(moving, Partitions);
        Assert.InRange(inMoving, 1, everything.Entities - 1);

        // This table keeps all but two partitions; then takes those two back from the whole one.
        mine.Restore(everything.WithoutPartitions(moving, Partitions));
        Assert.Equal(everything.Entities - inMoving, mine.Entities);
        var keys = Enumerable.Range(0, Entities).Select(e => EntityKey.Hash($"e-{e}")).ToArray();
        var expected = Read(whole, plan, now);
        var partial = Read(mine, plan, now);
        var empty = new float[plan.Count];
        using (var fresh = new FeatureTable(device, plan, options))
        {
            fresh.Gather([EntityKey.Hash("never-seen")], now, empty);
        }
        for (int e = 0; e < Entities; e++)
        {
            var row = partial.AsSpan(e * plan.Count, plan.Count).ToArray();
            Assert.Equal(moving.Contains(EntityKey.PartitionOf(keys[e], Partitions)) ? empty : expected.AsSpan(e * plan.Count, plan.Count).ToArray(), row);
        }

        // A small table grows to take them.
        mine.Restore(mine.Snapshot().WithEntitiesOf(everything, moving, Partitions));
        Assert.Equal(everything.Entities, mine.Entities);
        Assert.Equal(expected, Read(mine, plan, now));
        // And both go on alike.
        for (int b = 0; b < 10; b++)
        {
            var batch = NextBatch(random, plan, ref now);
            whole.Apply(batch);
            mine.Apply(batch);
        }
        Assert.Equal(Read(whole, plan, now), Read(mine, plan, now));
    }

    [Fact]
    public void A_snapshot_of_other_declarations_is_refused()
    {
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        var options = new FeatureTableOptions { InitialCapacity = 16, MaxCapacity = 100, MaxBatchEvents = 16 };
        using var counts = new FeatureTable(device, new FeaturePlan([new FeatureDefinition { Name = "count", Aggregation = Aggregation.Count }]), options);
        using var sums = new FeatureTable(device, new FeaturePlan([new FeatureDefinition { Name = "sum", Aggregation = Aggregation.Sum, Field = "amount" }]), options);
        var error = Assert.Throws<InvalidOperationException>(() => sums.Restore(counts.Snapshot()));
        Assert.Contains("other feature declarations", error.Message);
    }

    private static float[] Read(FeatureTable table, FeaturePlan plan, long now) => MixedBatches.Read(table, plan, Entities, now);

    private static ArrayBatch NextBatch(Random random, FeaturePlan plan, ref long now) => MixedBatches.Next(random, plan, Entities, 256, ref now);
}

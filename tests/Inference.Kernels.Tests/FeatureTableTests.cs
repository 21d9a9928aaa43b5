using Inference.Client;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Testing;
using Xunit.Abstractions;

namespace Inference.Kernels.Tests;

/// <summary>
/// Randomised checks of every aggregation against the oracle (seeded; the seed is in every failure
/// message): shuffled arrival, many events per entity per batch, skewed keys, late events, growth
/// and eviction.
/// </summary>
public sealed class FeatureTableTests(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Every_aggregation_matches_the_oracle_through_growth(AcceleratorKind kind)
    {
        using var device = DeviceContext.Create(kind);
        var report = FeatureSelfCheck.Run(device, seed: 101, entities: 300, initialCapacity: 32, maxCapacity: 1_000, batches: 40);
        Verify(report);
        Assert.True(report.Growths > 0, $"seed {report.Seed}: expected the table to grow from 32 slots");
        Assert.Equal(0, report.Evicted);
    }

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Every_aggregation_matches_the_oracle_through_growth_a_slice_at_a_time(AcceleratorKind kind)
    {
        using var device = DeviceContext.Create(kind);
        var report = FeatureSelfCheck.Run(device, seed: 303, entities: 300, initialCapacity: 16, maxCapacity: 1_000, batches: 40, maxBatch: 64, growthSlice: 7);
        Verify(report);
        Assert.True(report.Growths >= 3, $"seed {report.Seed}: expected the table to grow from 16 slots in slices ({report.Growths} growths)");
    }

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Every_aggregation_matches_the_oracle_when_the_idlest_are_evicted(AcceleratorKind kind)
    {
        using var device = DeviceContext.Create(kind);
        var report = FeatureSelfCheck.Run(device, seed: 202, entities: 400, initialCapacity: 64, maxCapacity: 128, batches: 40);
        Verify(report);
        Assert.True(report.Evicted > 0, $"seed {report.Seed}: expected evictions at capacity 128");
        Assert.Equal(128, report.Capacity);
    }

    [Fact]
    public void Batches_larger_than_a_host_slice_match_the_oracle()
    {
        // The CPU backend applies such batches a slice at a time: the state must be the whole batch's.
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        var report = FeatureSelfCheck.Run(device, seed: 404, entities: 3_000, initialCapacity: 16_384, maxCapacity: 16_384, batches: 12,
            maxBatch: 4 * FeatureTable.HostSliceEvents);
        Verify(report);
        Assert.True(report.Events > 12 * FeatureTable.HostSliceEvents, $"expected batches larger than a slice; {report.Events} events");
    }

    [Theory]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(9)]
    public void Other_seeds_match_the_oracle_too(int seed)
    {
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        Verify(FeatureSelfCheck.Run(device, seed, entities: 150, initialCapacity: 16, maxCapacity: 120, batches: 25));
    }

    private void Verify(SelfCheckReport report)
    {
        output.WriteLine($"seed {report.Seed} on {report.Accelerator}: {report.Events} events, {report.Entities} entities, capacity {report.Capacity} after {report.Growths} growths, {report.Evicted} evicted, late per feature [{string.Join(", ", report.Late)}]");
        Assert.True(report.Mismatches.Count == 0, $"seed {report.Seed}: {string.Join("; ", report.Mismatches)}");
        Assert.Equal(report.OracleLate, report.Late);
        Assert.True(report.Late.Sum() > 0, $"seed {report.Seed}: the stream should contain late events");
    }

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void A_ttl_evicts_entities_idle_since_the_cutoff_and_they_start_afresh(AcceleratorKind kind)
    {
        var plan = new FeaturePlan([new FeatureDefinition { Name = "sum", Aggregation = Aggregation.Sum, Field = "v" }]);
        using var device = DeviceContext.Create(kind);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = 8, MaxCapacity = 8, MaxBatchEvents = 8 });
        table.Apply(new ArrayBatch([1, 2, 3], [1_000, 5_000, 9_000], [[1f, 2f, 3f]], []));
        Assert.Equal([1UL, 2UL], table.EvictIdle(cutoffTimeMs: 6_000).Order());
        Assert.Equal(1, table.Entities);
        Assert.Null(table.Find(1));
        table.Apply(new ArrayBatch([1], [10_000], [[7f]], []));
        var sums = new float[3];
        table.Gather([1, 2, 3], 10_000, sums, transform: false);
        Assert.Equal([7f, 0f, 3f], sums);
    }

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void A_cleared_table_holds_nothing_and_then_reads_as_a_new_one(AcceleratorKind kind)
    {
        // The point-in-time replay's scratch table is cleared and used again: what it held before must not show.
        var plan = new FeaturePlan(FeatureSelfCheck.AllAggregations());
        var random = new Random(21);
        long now = 1_700_000_000_000;
        var before = MixedBatches.Next(random, plan, entities: 40, maxRows: 400, ref now);
        var after = MixedBatches.Next(random, plan, entities: 40, maxRows: 400, ref now);
        var options = new FeatureTableOptions { InitialCapacity = 64, MaxCapacity = 512, MaxBatchEvents = 400 };
        using var device = DeviceContext.Create(kind);
        using var reused = new FeatureTable(device, plan, options);
        using var fresh = new FeatureTable(device, plan, options);
        reused.Apply(before);
        Assert.True(reused.Entities > 0);

        reused.Clear();

        Assert.Equal(0, reused.Entities);
        Assert.Empty(reused.EvictIdle(cutoffTimeMs: long.MaxValue));
        Assert.All(before.Entities.ToArray(), entity => Assert.Null(reused.Find(entity)));
        reused.Apply(after);
        fresh.Apply(after);
        Assert.Equal(fresh.Entities, reused.Entities);
        for (long at = now - 60_000; at <= now + 400_000; at += 115_000)
        {
            Assert.Equal(MixedBatches.Read(fresh, plan, 40, at), MixedBatches.Read(reused, plan, 40, at));
        }
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    public void Every_feature_reads_the_same_wherever_the_batches_are_cut(int seed)
    {
        // One stream, out of order (some events behind their entity's newest by more than a window's lateness),
        // applied as large batches (a backlog, one node) and re-cut into small ones (a pool worker, a replay).
        var plan = new FeaturePlan(FeatureSelfCheck.AllAggregations());
        var random = new Random(seed);
        long now = 1_700_000_000_000;
        var batches = Enumerable.Range(0, 12).Select(_ => MixedBatches.Next(random, plan, entities: 40, maxRows: 400, ref now)).ToList();
        var entities = batches.SelectMany(b => b.Entities.ToArray()).ToArray();
        var times = batches.SelectMany(b => b.Times.ToArray()).ToArray();
        var numeric = Enumerable.Range(0, plan.NumericFields.Count).Select(c => batches.SelectMany(b => b.Numeric(c).ToArray()).ToArray()).ToArray();
        var keys = Enumerable.Range(0, plan.KeyFields.Count).Select(c => batches.SelectMany(b => b.Keys(c).ToArray()).ToArray()).ToArray();
        var options = new FeatureTableOptions { InitialCapacity = 64, MaxCapacity = 8_192, MaxBatchEvents = entities.Length };

        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var whole = new FeatureTable(device, plan, options);
        using var cut = new FeatureTable(device, plan, options);
        var late = new long[plan.Count];
        whole.Apply(new ArrayBatch(entities, times, numeric, keys)).Late.CopyTo(late);
        var cutLate = new long[plan.Count];
        for (int start = 0; start < entities.Length;)
        {
            int n = Math.Min(entities.Length - start, random.Next(1, 60));
            var result = cut.Apply(new ArrayBatch(entities[start..(start + n)], times[start..(start + n)],
                [.. numeric.Select(c => c[start..(start + n)])], [.. keys.Select(c => c[start..(start + n)])]));
            for (int f = 0; f < plan.Count; f++)
            {
                cutLate[f] += result.Late[f];
            }
            start += n;
        }

        Assert.True(late.Sum() > 0, $"seed {seed}: the stream should hold late events");
        Assert.Equal(late, cutLate);
        for (long at = now - 60_000; at <= now + 400_000; at += 115_000)
        {
            var expected = MixedBatches.Read(whole, plan, 40, at);
            var actual = MixedBatches.Read(cut, plan, 40, at);
            for (int i = 0; i < expected.Length; i++)
            {
                Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-6 * Math.Max(1, Math.Abs(expected[i])),
                    $"seed {seed}: e-{i / plan.Count} {plan.Definitions[i % plan.Count].Name} at {at}: {expected[i]} in one batch, {actual[i]} cut");
            }
        }
    }

    [Fact]
    public void Bad_declarations_fail_naming_the_feature()
    {
        FeatureDefinitionException Fails(params FeatureDefinition[] definitions) =>
            Assert.Throws<FeatureDefinitionException>(() => new FeaturePlan(definitions));

        Assert.Contains("'s' (Sum) needs Field", Fails(new FeatureDefinition { Name = "s", Aggregation = Aggregation.Sum }).Message);
        Assert.Contains("'d' (DecayedSum) needs HalfLifeMs", Fails(new FeatureDefinition { Name = "d", Aggregation = Aggregation.DecayedSum, Field = "x" }).Message);
        Assert.Contains("'w' (WindowSum) needs HorizonMs > 0 and a whole number of its 7 buckets",
            Fails(new FeatureDefinition { Name = "w", Aggregation = Aggregation.WindowSum, Field = "x", HorizonMs = 60_000, Buckets = 7 }).Message);
        Assert.Contains("'h' (DistinctCount): Precision", Fails(new FeatureDefinition { Name = "h", Aggregation = Aggregation.DistinctCount, Field = "k", Precision = 30 }).Message);
        Assert.Contains("'r' (Ratio): Denominator must name a declared feature",
            Fails(new FeatureDefinition { Name = "c", Aggregation = Aggregation.Count }, new FeatureDefinition { Name = "r", Aggregation = Aggregation.Ratio, Numerator = "c", Denominator = "nope" }).Message);
        Assert.Contains("'c' is declared twice", Fails(new FeatureDefinition { Name = "c", Aggregation = Aggregation.Count }, new FeatureDefinition { Name = "c", Aggregation = Aggregation.Count }).Message);
    }
}

public sealed class EntityKeyTests
{
    [Theory]
    // The Java client's Utils.murmur2 of these bytes, as Kafka's own tests pin them.
    [InlineData("21", -973932308)]
    [InlineData("foobar", -790332482)]
    [InlineData("a-little-bit-long-string", -985981536)]
    [InlineData("a-little-bit-longer-string", -1486304829)]
    [InlineData("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971)]
    [InlineData("abc", 479470107)]
    public void The_partitioner_is_kafkas_murmur2(string key, int java)
    {
        // Modulo int.MaxValue the partition is the positive hash itself (toPositive in the Java client).
        Assert.Equal(java & 0x7fffffff, KafkaPartitioner.PartitionOf(key, int.MaxValue));
    }

    [Fact]
    public void Keys_carry_kafkas_partitioner_hash_above_xxh3_64_over_utf8()
    {
        // Pinned from the published values: XXH3-64 of the empty input with seed 0 is 0x2D06800538D394C2, and
        // Kafka's murmur2 of it is 275646681 (the Java client's Utils.murmur2 of an empty array).
        Assert.Equal((275_646_681UL << 33) | (0x2D06800538D394C2UL & ((1UL << 33) - 1)), EntityKey.Hash(""));
        Assert.Equal(EntityKey.Hash("user-42"u8), EntityKey.Hash("user-42"));
        Assert.NotEqual(EntityKey.Hash("user-42"), EntityKey.Hash("user-43"));
        Assert.Equal(1UL, FeatureTable.TableKey(0));
        // The partition is the one Kafka's default partitioner gives the key.
        for (int i = 0; i < 1_000; i++)
        {
            string key = $"user-{i}";
            Assert.Equal(KafkaPartitioner.PartitionOf(key, 12), EntityKey.PartitionOf(EntityKey.Hash(key), 12));
        }
    }
}

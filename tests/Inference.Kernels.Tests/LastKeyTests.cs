using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Kernels.Tests;

/// <summary>
/// The last keys a plan keeps per entity (the ids of a model's <c>LastOf</c> inputs), against a plain
/// dictionary: the key of the event with the newest time, ties taking the larger key, whatever the
/// arrival order; several events of one entity in a batch, equal times, skewed keys, growth, a snapshot.
/// </summary>
public sealed class LastKeyTests
{
    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Each_entity_keeps_the_key_of_its_newest_event_whatever_the_arrival_order(AcceleratorKind kind)
    {
        const int seed = 4711;
        var random = new Random(seed);
        var plan = new FeaturePlan([new FeatureDefinition { Name = "amount", Aggregation = Aggregation.Sum, Field = "amount" }], ["merchant", "device"]);
        Assert.Equal(["merchant", "device"], plan.KeyFields);
        using var device = DeviceContext.Create(kind);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = 16, MaxCapacity = 4_096, MaxBatchEvents = 256, MaxGatherRows = 64 });

        // Per entity and field: the newest time, and the largest key at it.
        var expected = new Dictionary<(ulong Entity, int Field), (long Time, ulong Key)>();
        var sums = new Dictionary<ulong, double>();
        for (int b = 0; b < 60; b++)
        {
            int n = random.Next(1, 257);
            var entities = new ulong[n];
            var times = new long[n];
            var amounts = new float[n];
            var keys = new[] { new ulong[n], new ulong[n] };
            for (int i = 0; i < n; i++)
            {
                // A third of the events on one entity; times out of order and often equal.
                entities[i] = random.Next(3) == 0 ? 1UL : (ulong)random.Next(2, 300);
                times[i] = 10_000 + 1_000 * b + random.Next(-3_000, 40) / 10 * 10;
                amounts[i] = random.Next(1, 10);
                sums[entities[i]] = sums.GetValueOrDefault(entities[i]) + amounts[i];
                for (int f = 0; f < 2; f++)
                {
                    keys[f][i] = EntityKey.Hash($"k-{random.Next(20)}");
                    var current = expected.TryGetValue((entities[i], f), out var held) ? held : (Time: long.MinValue, Key: 0UL);
                    if (times[i] > current.Time || (times[i] == current.Time && keys[f][i] > current.Key))
                    {
                        expected[(entities[i], f)] = (times[i], keys[f][i]);
                    }
                }
            }
            table.Apply(new ArrayBatch(entities, times, [amounts], keys));
        }

        var known = sums.Keys.Order().ToArray();
        Check(table, known, expected, sums, $"seed {seed} on {kind}");
        Assert.True(table.Capacity > 16, "the table should have grown");

        // A snapshot restored into a fresh table reads the same keys.
        var snapshot = table.Snapshot();
        using var restored = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = 16, MaxCapacity = 4_096, MaxBatchEvents = 256, MaxGatherRows = 64 });
        restored.Restore(snapshot);
        Check(restored, known, expected, sums, $"seed {seed} on {kind}, restored");

        // An entity never seen has no key.
        var none = new ulong[2];
        table.Gather([999_999UL], 0, new float[1], lastKeys: none);
        Assert.Equal([0UL, 0UL], none);
    }

    [Fact]
    public void A_point_in_time_read_before_the_newest_event_is_flagged_inexact()
    {
        var plan = new FeaturePlan([new FeatureDefinition { Name = "count", Aggregation = Aggregation.WindowCount, HorizonMs = 1_000, Buckets = 10 }], ["merchant"]);
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = 16, MaxCapacity = 64, MaxBatchEvents = 16, MaxGatherRows = 16 });
        ulong a = EntityKey.Hash("m-a"), b = EntityKey.Hash("m-b");
        table.Apply(new ArrayBatch([7UL, 7UL], [100L, 200L], [], [[a, b]]));

        var keys = new ulong[2];
        var inexact = new bool[2];
        table.GatherAsOf([7UL, 7UL], [200L, 150L], new float[2], inexact, lastKeys: keys);
        Assert.Equal([b, b], keys);
        Assert.Equal([false, true], inexact);
    }

    [Fact]
    public void A_last_key_field_must_not_be_a_numeric_field_or_the_entity()
    {
        var sum = new FeatureDefinition { Name = "amount", Aggregation = Aggregation.Sum, Field = "amount" };
        Assert.Contains("'amount'", Assert.Throws<FeatureDefinitionException>(() => new FeaturePlan([sum], ["amount"])).Message);
        Assert.Contains("'entity'", Assert.Throws<FeatureDefinitionException>(() => new FeaturePlan([sum], ["entity"])).Message);
        Assert.NotEqual(FeatureTable.Fingerprint(new FeaturePlan([sum])), FeatureTable.Fingerprint(new FeaturePlan([sum], ["merchant"])));
    }

    private static void Check(FeatureTable table, ulong[] entities, Dictionary<(ulong, int), (long Time, ulong Key)> expected, Dictionary<ulong, double> sums, string context)
    {
        var values = new float[entities.Length];
        var keys = new ulong[entities.Length * 2];
        for (int start = 0; start < entities.Length; start += 64)
        {
            int rows = Math.Min(64, entities.Length - start);
            table.Gather(entities.AsSpan(start, rows), long.MaxValue / 2, values.AsSpan(start, rows), lastKeys: keys.AsSpan(start * 2, rows * 2));
        }
        for (int r = 0; r < entities.Length; r++)
        {
            Assert.True(Math.Abs(sums[entities[r]] - values[r]) < 1e-3, $"{context}: entity {entities[r]} sum {values[r]}, expected {sums[entities[r]]}");
            for (int f = 0; f < 2; f++)
            {
                Assert.True(expected[(entities[r], f)].Key == keys[r * 2 + f], $"{context}: entity {entities[r]} field {f} key {keys[r * 2 + f]}, expected {expected[(entities[r], f)].Key}");
            }
        }
    }
}

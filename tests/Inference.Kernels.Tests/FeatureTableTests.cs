using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Xunit.Abstractions;

namespace Inference.Kernels.Tests;

/// <summary>
/// Randomised checks of every aggregation against the oracle (seeded; the seed is in every failure
/// message): shuffled arrival, many events per entity per batch, skewed keys, late events, growth
/// and eviction.
/// </summary>
public sealed class FeatureTableTests(ITestOutputHelper output)
{
    private const long Start = 1_767_225_600_000;

    public static FeatureDefinition[] AllAggregations() =>
    [
        new() { Name = "count", Aggregation = Aggregation.Count },
        new() { Name = "amount_sum", Aggregation = Aggregation.Sum, Field = "amount" },
        new() { Name = "amount_mean", Aggregation = Aggregation.Mean, Field = "amount" },
        new() { Name = "amount_min", Aggregation = Aggregation.Min, Field = "amount", Default = -1 },
        new() { Name = "amount_max", Aggregation = Aggregation.Max, Field = "amount" },
        new() { Name = "amount_last", Aggregation = Aggregation.Last, Field = "amount" },
        new() { Name = "idle_ms", Aggregation = Aggregation.TimeSinceLast },
        new() { Name = "amount_decayed", Aggregation = Aggregation.DecayedSum, Field = "amount", HalfLifeMs = 120_000 },
        new() { Name = "items_decayed_mean", Aggregation = Aggregation.DecayedMean, Field = "items", HalfLifeMs = 300_000 },
        new() { Name = "count_5m", Aggregation = Aggregation.WindowCount, HorizonMs = 300_000, Buckets = 10, AllowedLatenessMs = 60_000 },
        new() { Name = "amount_5m", Aggregation = Aggregation.WindowSum, Field = "amount", HorizonMs = 300_000, Buckets = 10, AllowedLatenessMs = 60_000 },
        new() { Name = "items_1m_mean", Aggregation = Aggregation.WindowMean, Field = "items", HorizonMs = 60_000, Buckets = 6, AllowedLatenessMs = 20_000, Default = -5 },
        new() { Name = "merchants", Aggregation = Aggregation.DistinctCount, Field = "merchant", Precision = 10 },
        new() { Name = "amount_per_5m_event", Aggregation = Aggregation.Ratio, Numerator = "amount_5m", Denominator = "count_5m" },
    ];

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Every_aggregation_matches_the_oracle_through_growth(AcceleratorKind kind) =>
        Run(kind, seed: 101, entities: 300, initialCapacity: 32, maxCapacity: 1_000, batches: 40, expectEviction: false);

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Every_aggregation_matches_the_oracle_when_the_idlest_are_evicted(AcceleratorKind kind) =>
        Run(kind, seed: 202, entities: 400, initialCapacity: 64, maxCapacity: 128, batches: 40, expectEviction: true);

    private void Run(AcceleratorKind kind, int seed, int entities, int initialCapacity, int maxCapacity, int batches, bool expectEviction)
    {
        var plan = new FeaturePlan(AllAggregations());
        var oracle = new FeatureOracle(plan);
        using var device = DeviceContext.Create(kind);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions
        {
            InitialCapacity = initialCapacity,
            MaxCapacity = maxCapacity,
            MaxBatchEvents = Math.Min(256, maxCapacity),
            MaxGatherRows = 64,
        });
        var random = new Random(seed);
        var late = new long[plan.Count];
        long clock = Start;
        int evictions = 0;
        for (int b = 0; b < batches; b++)
        {
            int n = random.Next(1, Math.Min(256, maxCapacity) + 1);
            var keys = new ulong[n];
            var times = new long[n];
            var amount = new float[n];
            var items = new float[n];
            var merchant = new ulong[n];
            for (int i = 0; i < n; i++)
            {
                // Skewed keys (a few entities get most events), and in eviction runs the hot set drifts.
                int entity = (int)(entities * Math.Pow(random.NextDouble(), 2.5));
                if (expectEviction)
                {
                    entity = (entity + b * 10) % entities;
                }
                keys[i] = (ulong)entity * 0x9E3779B97F4A7C15UL + 1;
                clock += random.Next(0, 400);
                // Arrival is out of order: most events a little behind the clock, some far behind (late).
                long lag = random.NextDouble() < 0.1 ? random.Next(0, 200_000) : random.Next(0, 5_000);
                times[i] = Math.Max(Start, clock - lag);
                amount[i] = (float)Math.Round(random.NextDouble() * 500 - 100, 2);
                items[i] = random.Next(0, 10);
                merchant[i] = (ulong)random.Next(0, 1 + entity) * 0xD6E8FEB86659FD93UL;
            }
            var result = table.Apply(new ArrayBatch(keys, times, [amount, items], [merchant]));
            Assert.Equal(0, result.Dropped);
            foreach (ulong evicted in result.Evicted)
            {
                oracle.Evict(evicted);
            }
            evictions += result.Evicted.Length;
            oracle.Apply(keys, times, [amount, items], [merchant]);
            for (int f = 0; f < plan.Count; f++)
            {
                late[f] += result.Late[f];
            }
        }

        output.WriteLine($"seed {seed} on {device.Description}: {oracle.Entities.Count} entities, capacity {table.Capacity} after {table.Growths} growths, {evictions} evicted, late per feature [{string.Join(", ", late)}]");
        Assert.Equal(oracle.Late, late);
        Assert.True(late.Sum() > 0, $"seed {seed}: the stream should contain late events");
        Assert.Equal(oracle.Entities.Count, table.Entities);
        if (expectEviction)
        {
            Assert.True(evictions > 0, $"seed {seed}: expected evictions at capacity {maxCapacity}");
        }
        else
        {
            Assert.True(table.Growths > 0, $"seed {seed}: expected the table to grow from {initialCapacity}");
        }

        var held = oracle.Entities.ToArray();
        CompareAll(table, oracle, held, now: clock, seed, "now");
        // Point-in-time, a little in the past: windows are exact there; running aggregates are flagged.
        var asOf = held.Select(e => Math.Max(Start, oracle.Newest(e) - 15_000)).ToArray();
        var values = new float[held.Length * plan.Count];
        var inexact = new bool[held.Length];
        table.GatherAsOf(held, asOf, values, inexact, transform: false);
        for (int r = 0; r < held.Length; r++)
        {
            Assert.True(inexact[r] == (asOf[r] < oracle.Newest(held[r])), $"seed {seed}: row {r} inexact flag");
            for (int f = 0; f < plan.Count; f++)
            {
                if (plan.Definitions[f].IsWindowed)
                {
                    Check(plan.Definitions[f], values[r * plan.Count + f], oracle.Value(held[r], f, asOf[r]), seed, $"as of {asOf[r]} entity {held[r]}");
                }
            }
        }
    }

    private static void CompareAll(FeatureTable table, FeatureOracle oracle, ulong[] held, long now, int seed, string label)
    {
        var plan = table.Plan;
        var values = new float[held.Length * plan.Count];
        table.Gather(held, now, values, transform: false);
        for (int r = 0; r < held.Length; r++)
        {
            for (int f = 0; f < plan.Count; f++)
            {
                Check(plan.Definitions[f], values[r * plan.Count + f], oracle.Value(held[r], f, now), seed, $"{label} entity {held[r]}");
            }
        }
        // An entity the table never saw reads as defaults.
        var unknown = new float[plan.Count];
        table.Gather([12345], now, unknown, transform: false);
        for (int f = 0; f < plan.Count; f++)
        {
            Assert.Equal((float)plan.Definitions[f].Default, unknown[f]);
        }
    }

    private static void Check(FeatureDefinition d, float actual, double expected, int seed, string where)
    {
        string message = $"seed {seed}, {where}, feature {d.Name}: {actual:R}, expected {expected:R}";
        switch (d.Aggregation)
        {
            case Aggregation.Count or Aggregation.Min or Aggregation.Max or Aggregation.Last or Aggregation.WindowCount:
                Assert.True(actual == (float)expected, message);
                break;
            case Aggregation.DistinctCount:
                Assert.True(Math.Abs(actual - expected) <= FeatureOracle.DistinctCountTolerance(d.Precision, expected), message);
                break;
            default:
                Assert.True(Math.Abs(actual - expected) <= 1e-5 * Math.Max(1e-3, Math.Abs(expected)), message);
                break;
        }
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

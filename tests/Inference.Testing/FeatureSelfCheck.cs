using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Testing;

/// <summary>What a self-check found.</summary>
public sealed record SelfCheckReport(
    int Seed, string Accelerator, int Entities, int Capacity, int Growths, int Evicted, long Events, long[] Late, long[] OracleLate, IReadOnlyList<string> Mismatches)
{
    public bool Passed => Mismatches.Count == 0 && Late.AsSpan().SequenceEqual(OracleLate);
}

/// <summary>
/// A seeded randomised workload run through a <see cref="FeatureTable"/> and the
/// <see cref="FeatureOracle"/> side by side: skewed keys, out-of-order arrival with some events far
/// behind (late), many events per entity per batch, growth from a small table, and (with a small
/// maximum) eviction of the idlest. Every feature of every entity is compared now and, for windowed
/// features, at a point in time in the past. The kernel tests and the GPU check (bench/gpu) run it.
/// </summary>
public static class FeatureSelfCheck
{
    public const long Start = 1_767_225_600_000;

    /// <summary>One declaration of every aggregation over fields "amount", "items" and key field "merchant".</summary>
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

    // growthSlice: when positive, the table grows ahead of need a slice of this many slots at a time
    // (as the device executor grows it), and every entity is read back against the oracle between slices.
    public static SelfCheckReport Run(DeviceContext device, int seed, int entities, int initialCapacity, int maxCapacity, int batches, int maxBatch = 256, int growthSlice = 0)
    {
        var plan = new FeaturePlan(AllAggregations());
        var oracle = new FeatureOracle(plan);
        maxBatch = Math.Min(maxBatch, maxCapacity);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions
        {
            InitialCapacity = initialCapacity,
            MaxCapacity = maxCapacity,
            MaxBatchEvents = maxBatch,
            MaxGatherRows = 64,
        });
        var random = new Random(seed);
        var late = new long[plan.Count];
        var mismatches = new List<string>();
        long clock = Start;
        long events = 0;
        int evicted = 0;
        bool drifting = maxCapacity < entities;
        for (int b = 0; b < batches; b++)
        {
            int n = random.Next(1, maxBatch + 1);
            var keys = new ulong[n];
            var times = new long[n];
            var amount = new float[n];
            var items = new float[n];
            var merchant = new ulong[n];
            for (int i = 0; i < n; i++)
            {
                // Skewed keys: a few entities get most events; when the table is too small the hot set drifts.
                int entity = (int)(entities * Math.Pow(random.NextDouble(), 2.5));
                if (drifting)
                {
                    entity = (entity + b * 10) % entities;
                }
                keys[i] = (ulong)entity * 0x9E3779B97F4A7C15UL + 1;
                clock += random.Next(0, 400);
                // Out of order: most events a little behind the clock, one in ten far behind (late for some windows).
                long lag = random.NextDouble() < 0.1 ? random.Next(0, 200_000) : random.Next(0, 5_000);
                times[i] = Math.Max(Start, clock - lag);
                amount[i] = (float)Math.Round(random.NextDouble() * 500 - 100, 2);
                items[i] = random.Next(0, 10);
                merchant[i] = (ulong)random.Next(0, 1 + entity) * 0xD6E8FEB86659FD93UL;
            }
            if (growthSlice > 0 && table.FreeSlots < maxBatch && table.BeginGrowth(table.Entities + 2 * maxBatch))
            {
                while (!table.GrowthSlice(growthSlice))
                {
                    // Reads between slices see the live table, whole.
                    CompareAll(table, oracle, plan, clock, $"batch {b}, mid-growth", mismatches);
                }
            }
            var result = table.Apply(new ArrayBatch(keys, times, [amount, items], [merchant]));
            if (result.Dropped != 0)
            {
                mismatches.Add($"batch {b}: {result.Dropped} events found no slot");
            }
            foreach (ulong key in result.Evicted)
            {
                oracle.Evict(key);
            }
            evicted += result.Evicted.Length;
            oracle.Apply(keys, times, [amount, items], [merchant]);
            events += n;
            for (int f = 0; f < plan.Count; f++)
            {
                late[f] += result.Late[f];
            }
        }

        if (oracle.Entities.Count != table.Entities)
        {
            mismatches.Add($"the table holds {table.Entities} entities, the oracle {oracle.Entities.Count}");
        }
        var held = oracle.Entities.ToArray();
        var values = new float[held.Length * plan.Count];
        CompareAll(table, oracle, plan, clock, "now", mismatches);
        var unknown = new float[plan.Count];
        table.Gather([12345], clock, unknown, transform: false);
        for (int f = 0; f < plan.Count; f++)
        {
            if (unknown[f] != (float)plan.Definitions[f].Default)
            {
                mismatches.Add($"unknown entity, feature {plan.Definitions[f].Name}: {unknown[f]}, expected the default {plan.Definitions[f].Default}");
            }
        }

        // Point in time, a little in the past: windows are exact there; running aggregates are flagged.
        var asOf = held.Select(e => Math.Max(Start, oracle.Newest(e) - 15_000)).ToArray();
        var inexact = new bool[held.Length];
        table.GatherAsOf(held, asOf, values, inexact, transform: false);
        for (int r = 0; r < held.Length; r++)
        {
            if (inexact[r] != (asOf[r] < oracle.Newest(held[r])))
            {
                mismatches.Add($"as of {asOf[r]}, entity {held[r]:X}: inexact flag {inexact[r]}");
            }
            for (int f = 0; f < plan.Count; f++)
            {
                if (plan.Definitions[f].IsWindowed)
                {
                    Compare(plan.Definitions[f], values[r * plan.Count + f], oracle.Value(held[r], f, asOf[r]), $"as of {asOf[r]}, entity {held[r]:X}", mismatches);
                }
            }
        }
        return new SelfCheckReport(seed, device.Description, held.Length, table.Capacity, table.Growths, evicted, events, late, (long[])oracle.Late.Clone(), mismatches);
    }

    /// <summary>Every feature of every entity the oracle holds, as of <paramref name="clock"/>.</summary>
    private static void CompareAll(FeatureTable table, FeatureOracle oracle, FeaturePlan plan, long clock, string when, List<string> mismatches)
    {
        var held = oracle.Entities.ToArray();
        var values = new float[held.Length * plan.Count];
        table.Gather(held, clock, values, transform: false);
        for (int r = 0; r < held.Length; r++)
        {
            for (int f = 0; f < plan.Count; f++)
            {
                Compare(plan.Definitions[f], values[r * plan.Count + f], oracle.Value(held[r], f, clock), $"{when}, entity {held[r]:X}", mismatches);
            }
        }
    }

    /// <summary>Exact for counts, extremes and last values; HLL within its error bound; 1e-5 relative otherwise.</summary>
    private static void Compare(FeatureDefinition d, float actual, double expected, string where, List<string> mismatches)
    {
        bool ok = d.Aggregation switch
        {
            Aggregation.Count or Aggregation.Min or Aggregation.Max or Aggregation.Last or Aggregation.WindowCount => actual == (float)expected,
            Aggregation.DistinctCount => Math.Abs(actual - expected) <= FeatureOracle.DistinctCountTolerance(d.Precision, expected),
            _ => Math.Abs(actual - expected) <= 1e-5 * Math.Max(1e-3, Math.Abs(expected)),
        };
        if (!ok && mismatches.Count < 20)
        {
            mismatches.Add($"{where}, feature {d.Name}: {actual:R}, expected {expected:R}");
        }
    }
}

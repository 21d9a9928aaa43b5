using System.Diagnostics;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using ILGPU.Runtime;

namespace Inference.KernelCheck;

/// <summary>Throughput of the feature table on one accelerator.</summary>
internal static class Bench
{
    /// <summary>The benchmark's features: sum, max, decayed sum and last value of fields in turn.</summary>
    public static FeaturePlan Plan(int features)
    {
        var kinds = new[] { Aggregation.Sum, Aggregation.Max, Aggregation.DecayedSum, Aggregation.Last };
        var definitions = new List<FeatureDefinition>();
        for (int f = 0; f < features; f++)
        {
            definitions.Add(new FeatureDefinition
            {
                Name = $"f{f}",
                Aggregation = kinds[f % kinds.Length],
                Field = $"v{f % 4}",
                HalfLifeMs = 600_000,
            });
        }
        return new FeaturePlan(definitions);
    }

    /// <summary>
    /// Bytes an event moves: its upload (key, time, numeric fields), the hash probe and slot columns
    /// (key, slot, count, newest time, anchor, touch), and per feature one double read and written.
    /// </summary>
    public static long BytesPerEvent(int features)
    {
        var plan = Plan(features);
        long upload = 8 + 8 + 4L * plan.NumericFields.Count;
        long slot = 8 + 4 + 4 * 8 + 4;
        return upload + slot + 16L * features;
    }

    public static Batch MakeBatch(int entities, int fields, int size, int seed, int hotEntities = 0)
    {
        var random = new Random(seed);
        var keys = new ulong[size];
        var times = new long[size];
        var numeric = new float[Math.Min(4, fields)][];
        for (int c = 0; c < numeric.Length; c++)
        {
            numeric[c] = new float[size];
        }
        for (int i = 0; i < size; i++)
        {
            keys[i] = (ulong)random.Next(hotEntities > 0 ? hotEntities : entities) * 0x9E3779B97F4A7C15UL + 1;
            times[i] = 1_767_225_600_000 + i;
            for (int c = 0; c < numeric.Length; c++)
            {
                numeric[c][i] = (float)random.NextDouble();
            }
        }
        return new Batch(keys, times, numeric);
    }

    /// <summary>
    /// Throughputs of two runners measured in turns (short runs, alternating, several rounds) so that
    /// both see the same machine: returns the median of each. On a shared machine, measuring one after
    /// the other lets a change in load between them decide the ratio.
    /// </summary>
    public static (double First, double Second) Interleaved(IApplyRunner first, IApplyRunner second, double seconds, int rounds = 5)
    {
        var a = new double[rounds];
        var b = new double[rounds];
        first.Run(0.2);
        second.Run(0.2);
        for (int r = 0; r < rounds; r++)
        {
            a[r] = first.Run(seconds / rounds);
            b[r] = second.Run(seconds / rounds);
        }
        Array.Sort(a);
        Array.Sort(b);
        return (a[rounds / 2], b[rounds / 2]);
    }

    public static double GatherRate(DeviceContext device, int entities, int size, double seconds)
    {
        var plan = Plan(8);
        int batchSize = Math.Min(65_536, entities);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = entities, MaxCapacity = entities, MaxBatchEvents = batchSize, MaxGatherRows = Math.Max(size, 1) });
        for (int fill = 0; fill < 2 * entities / batchSize; fill++)
        {
            var b = MakeBatch(entities, 8, batchSize, fill);
            table.Apply(new ArrayBatch(b.Keys, b.Times, b.Numeric, []));
        }
        var keys = MakeBatch(entities, 8, size, 7).Keys;
        var output = new float[size * plan.Count];
        table.Gather(keys, 1_767_225_700_000, output);
        var clock = Stopwatch.StartNew();
        long rows = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            table.Gather(keys, 1_767_225_700_000, output);
            rows += size;
        }
        return rows / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Bytes per second of a device-to-device buffer copy (each byte read once and written once).</summary>
    public static double CopyBandwidth(DeviceContext device, long bytes)
    {
        var accelerator = device.Accelerator;
        long count = bytes / sizeof(float);
        using var source = accelerator.Allocate1D<float>(count);
        using var target = accelerator.Allocate1D<float>(count);
        source.MemSetToZero();
        source.View.CopyTo(target.View);
        accelerator.Synchronize();
        var clock = Stopwatch.StartNew();
        int copies = 0;
        while (clock.Elapsed.TotalSeconds < 1 || copies < 3)
        {
            source.View.CopyTo(target.View);
            accelerator.Synchronize();
            copies++;
        }
        return 2.0 * bytes * copies / clock.Elapsed.TotalSeconds;
    }
}

internal sealed record Batch(ulong[] Keys, long[] Times, float[][] Numeric);

/// <summary>Something that applies the benchmark's batches: built and filled once, then timed in runs.</summary>
internal interface IApplyRunner : IDisposable
{
    /// <summary>Applies the timed batches for about <paramref name="seconds"/>; events per second.</summary>
    double Run(double seconds);
}

/// <summary>The feature table on a device, filled (every entity held) before the timed runs.</summary>
internal sealed class KernelApply : IApplyRunner
{
    private readonly FeatureTable _table;
    private readonly Batch[] _timed;

    public KernelApply(DeviceContext device, int entities, int features, int batchSize, int hotEntities = 0)
    {
        _table = new FeatureTable(device, Bench.Plan(features), new FeatureTableOptions { InitialCapacity = entities, MaxCapacity = entities, MaxBatchEvents = batchSize });
        // Fill the table first so the timed batches update held entities, as a steady stream does.
        for (int fill = 0; fill < 4 * entities / batchSize; fill++)
        {
            var b = Bench.MakeBatch(entities, features, batchSize, fill);
            _table.Apply(new ArrayBatch(b.Keys, b.Times, b.Numeric, []));
        }
        _timed = [.. Enumerable.Range(100, 4).Select(s => Bench.MakeBatch(entities, features, batchSize, s, hotEntities))];
    }

    public double Run(double seconds)
    {
        var clock = Stopwatch.StartNew();
        long applied = 0;
        for (int i = 0; clock.Elapsed.TotalSeconds < seconds; i++)
        {
            var b = _timed[i % _timed.Length];
            _table.Apply(new ArrayBatch(b.Keys, b.Times, b.Numeric, []));
            applied += b.Keys.Length;
        }
        return applied / clock.Elapsed.TotalSeconds;
    }

    public void Dispose() => _table.Dispose();
}

using System.Diagnostics;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Testing;

namespace Inference.KernelCheck;

/// <summary>
/// How long the copy of a full table to the host (the executor's pause at a checkpoint) and its restore
/// take. Whether they are exact is <see cref="SnapshotSelfCheck"/>, shared with the kernel tests.
/// </summary>
internal static class SnapshotTiming
{
    /// <summary>Median seconds of a snapshot into reused host arrays and of a restore, for a full table.</summary>
    public static (double Snapshot, double Restore, long Bytes) Measure(DeviceContext device, int entities, int features)
    {
        var plan = Bench.Plan(features);
        int batchSize = Math.Min(65_536, entities);
        var options = new FeatureTableOptions { InitialCapacity = entities, MaxCapacity = entities, MaxBatchEvents = batchSize };
        using var table = new FeatureTable(device, plan, options);
        using var target = new FeatureTable(device, plan, options);
        for (int fill = 0; fill < 4 * entities / batchSize; fill++)
        {
            var b = Bench.MakeBatch(entities, features, batchSize, fill);
            table.Apply(new ArrayBatch(b.Keys, b.Times, b.Numeric, []));
        }
        var spare = FeatureTable.AllocateSnapshot(plan, table.Capacity);
        var copies = new double[5];
        var restores = new double[5];
        FeatureTableSnapshot snapshot = spare;
        for (int i = 0; i < copies.Length; i++)
        {
            var clock = Stopwatch.StartNew();
            snapshot = table.Snapshot(snapshot);
            copies[i] = clock.Elapsed.TotalSeconds;
            clock.Restart();
            target.Restore(snapshot);
            device.Accelerator.Synchronize();
            restores[i] = clock.Elapsed.TotalSeconds;
        }
        Array.Sort(copies);
        Array.Sort(restores);
        long bytes = snapshot.Heads.LongLength + 8 * snapshot.Longs.LongLength + 8 * snapshot.Doubles.LongLength + 4 * snapshot.Registers.LongLength;
        return (copies[2], restores[2], bytes);
    }

}

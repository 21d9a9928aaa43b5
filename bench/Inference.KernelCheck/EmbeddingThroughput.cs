using System.Diagnostics;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Embeddings;

namespace Inference.KernelCheck;

/// <summary>An embedding table's learning path on one accelerator: ids to rows and values (Touch + Gather), and the sparse step.</summary>
internal static class EmbeddingThroughput
{
    /// <summary>Rows per second through Touch + Gather, and through Step, over a table already holding <paramref name="ids"/> ids.</summary>
    public static (double Gather, double Step) Measure(DeviceContext device, int ids, int dimension, int batch, double seconds)
    {
        var options = new EmbeddingTableOptions
        {
            Dimension = dimension,
            InitialCapacity = ids + batch + 1,
            MaxCapacity = ids + batch + 1,
            MaxBatchIds = batch,
            Optimizer = new SparseOptimizer { Kind = SparseOptimizerKind.Adagrad },
        };
        using var table = new EmbeddingTable(device, options);
        var random = new Random(1);
        var keys = new ulong[batch];
        var rows = new int[batch];
        var values = new float[batch * dimension];
        var gradients = new float[batch * dimension];
        for (int i = 0; i < gradients.Length; i++)
        {
            gradients[i] = (float)(random.NextDouble() - 0.5);
        }
        for (int start = 0; start < ids; start += batch)
        {
            for (int i = 0; i < batch; i++)
            {
                keys[i] = (ulong)((start + i) % ids) * 0x9E3779B97F4A7C15UL + 1;
            }
            table.Touch(keys, start, rows);
        }
        long gathered = 0, stepped = 0;
        double gatherTime = 0, stepTime = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            for (int i = 0; i < batch; i++)
            {
                keys[i] = (ulong)random.Next(ids) * 0x9E3779B97F4A7C15UL + 1;
            }
            long t0 = Stopwatch.GetTimestamp();
            table.Touch(keys, ids, rows);
            table.Gather(rows, values);
            long t1 = Stopwatch.GetTimestamp();
            table.Step(rows, gradients);
            long t2 = Stopwatch.GetTimestamp();
            gatherTime += Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
            stepTime += Stopwatch.GetElapsedTime(t1, t2).TotalSeconds;
            gathered += batch;
            stepped += batch;
        }
        return (gathered / gatherTime, stepped / stepTime);
    }
}

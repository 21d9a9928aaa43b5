using System.Globalization;
using Inference.Engine.Training;

namespace Inference.Bench.Pipeline;

/// <summary>
/// The feature log's memory per row, measured: the managed heap after logging <c>rows</c> served rows (each with a
/// request id, <c>width</c> model inputs and <c>ids</c> id inputs) less the heap before, over the rows. The log is
/// full (the ring at its capacity), as it is once a service has run for a while.
/// </summary>
internal static class FeatureLogBench
{
    public static int Run(int rows, int width, int ids)
    {
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var log = new FeatureLog(width, ids, rows, long.MaxValue, TimeProvider.System);
        const int Batch = 256;
        var requests = new ulong[Batch];
        var inputs = new float[Batch * width];
        var keys = new ulong[Batch * ids];
        var scores = new float[Batch];
        var random = new Random(3);
        for (int done = 0; done < rows; done += Batch)
        {
            for (int r = 0; r < Batch; r++)
            {
                requests[r] = (ulong)random.NextInt64(1, long.MaxValue);
            }
            log.Served(requests, inputs, keys, scores, 1);
        }
        long after = GC.GetTotalMemory(forceFullCollection: true);
        GC.KeepAlive(log);
        double perRow = (after - before) / (double)rows;
        double layout = 8 + 4.0 * width + 8.0 * ids + 8 + 8 + 4 + 4 + 8 + 1;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"feature log: {log.Count:N0} rows of {width} inputs and {ids} ids: {perRow:F1} bytes per row measured ({(after - before) / 1048576.0:F1} MiB); the arrays alone {layout:F0} bytes, the rest the request index"));
        return 0;
    }
}

using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Testing;

/// <summary>
/// Copies between the device and managed memory while the GC moves objects. A copy to or from a host
/// address must keep the array pinned for its whole length: an unpinned array that the GC compacts away
/// in the middle of a read keeps what it held (zeros for a fresh one), and a write lands where the array
/// used to be. One body for the kernel tests and the GPU check (bench/Inference.KernelCheck).
/// </summary>
public static class TransferSelfCheck
{
    private const int Entities = 64;

    /// <summary>Gathers <paramref name="reads"/> times into fresh arrays while another thread makes the GC compact; the torn reads found (empty: passed).</summary>
    public static List<string> Run(DeviceContext device, int reads)
    {
        var plan = new FeaturePlan([new FeatureDefinition { Name = "sum", Aggregation = Aggregation.Sum, Field = "v" }]);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = Entities, MaxCapacity = Entities, MaxBatchEvents = Entities });
        var keys = new ulong[Entities];
        var values = new float[Entities];
        for (int i = 0; i < Entities; i++)
        {
            keys[i] = (ulong)i + 1;
            values[i] = i + 1;
        }
        table.Apply(new ArrayBatch(keys, new long[Entities], [values], []));

        var torn = new List<string>();
        using var stop = new CancellationTokenSource();
        var compactor = new Thread(() =>
        {
            // Allocation keeps gen-0 collections coming, and gen-0 survivors (each read's fresh array) move.
            var garbage = new object[64];
            for (long n = 0; !stop.IsCancellationRequested; n++)
            {
                garbage[n % garbage.Length] = new byte[1_024];
            }
        });
        compactor.Start();
        try
        {
            for (int read = 0; read < reads && torn.Count < 20; read++)
            {
                var sums = new float[Entities];
                table.Gather(keys, 0, sums, transform: false);
                for (int i = 0; i < Entities; i++)
                {
                    if (sums[i] != values[i])
                    {
                        torn.Add($"read {read}: entity {keys[i]} read {sums[i]}, expected {values[i]}");
                    }
                }
            }
        }
        finally
        {
            stop.Cancel();
            compactor.Join();
        }
        return torn;
    }
}

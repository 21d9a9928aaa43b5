using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Kernels.Tests;

/// <summary>
/// Copies between the device and managed memory while the GC moves objects. ILGPU's copy to or from a
/// host address takes the address as pinned; an unpinned array that the GC compacts away in the middle
/// of a read keeps what it held (zeros for a fresh one), and a write lands where the array used to be.
/// </summary>
public sealed class TransferTests
{
    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Reads_into_fresh_arrays_are_whole_while_the_gc_compacts(AcceleratorKind kind)
    {
        const int Entities = 64, Reads = 250;
        var plan = new FeaturePlan([new FeatureDefinition { Name = "sum", Aggregation = Aggregation.Sum, Field = "v" }]);
        using var device = DeviceContext.Create(kind);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions { InitialCapacity = Entities, MaxCapacity = Entities, MaxBatchEvents = Entities });
        var keys = new ulong[Entities];
        var values = new float[Entities];
        for (int i = 0; i < Entities; i++)
        {
            keys[i] = (ulong)i + 1;
            values[i] = i + 1;
        }
        table.Apply(new ArrayBatch(keys, new long[Entities], [values], []));

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
            for (int read = 0; read < Reads; read++)
            {
                var sums = new float[Entities];
                table.Gather(keys, 0, sums, transform: false);
                for (int i = 0; i < Entities; i++)
                {
                    Assert.True(sums[i] == values[i], $"read {read}: entity {keys[i]} read {sums[i]}, expected {values[i]}");
                }
            }
        }
        finally
        {
            stop.Cancel();
            compactor.Join();
        }
    }
}

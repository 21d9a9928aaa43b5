using Inference.Kernels.Accelerators;
using Inference.Testing;

namespace Inference.Kernels.Tests;

/// <summary>Copies between the device and managed memory while the GC moves objects (the body is shared with the GPU check).</summary>
public sealed class TransferTests
{
    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Reads_into_fresh_arrays_are_whole_while_the_gc_compacts(AcceleratorKind kind)
    {
        using var device = DeviceContext.Create(kind);
        var torn = TransferSelfCheck.Run(device, reads: 250);
        Assert.True(torn.Count == 0, string.Join("\n", torn));
    }
}

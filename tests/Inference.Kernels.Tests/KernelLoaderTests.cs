using ILGPU;
using ILGPU.Runtime;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Kernels.Tests;

/// <summary>The CPU backend's launches with as many threads as the machine gives, one included.</summary>
public sealed class KernelLoaderTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void A_launch_visits_every_element_once_and_the_loader_closes(int threads)
    {
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        var counts = new int[20_000];
        using var buffer = device.Accelerator.Allocate1D(counts);
        var loader = new KernelLoader(device, threads);
        var increment = loader.Load<Column<int>, int>(Increment);
        int launched = loader.Threads(counts.Length);
        increment(launched, launched, DeviceMemory.Col(device, buffer), counts.Length);
        buffer.CopyToCPU(counts);

        // One machine core: no workers, and closing must not wake any (it threw there, and serve stopped).
        loader.Dispose();
        Assert.Equal(Math.Min(threads, 5), launched);
        Assert.All(counts, count => Assert.Equal(1, count));
    }

    private static void Increment(Index1D thread, int stride, Column<int> counts, int length)
    {
        for (int i = thread; i < length; i += stride)
        {
            counts[i]++;
        }
    }
}

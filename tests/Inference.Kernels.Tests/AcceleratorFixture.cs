using Inference.Kernels.Accelerators;

namespace Inference.Kernels.Tests;

/// <summary>
/// The accelerators kernel tests run on: the CPU backend and ILGPU's CPU simulator always (the
/// simulator runs the kernels through ILGPU's compiler, as CUDA does), and CUDA where a device is
/// present (the GPU script in bench/gpu runs the same checks on a lent machine).
/// </summary>
public static class Accelerators
{
    public static TheoryData<AcceleratorKind> Available()
    {
        var data = new TheoryData<AcceleratorKind> { AcceleratorKind.Cpu, AcceleratorKind.CpuSimulator };
        if (CudaPresent.Value)
        {
            data.Add(AcceleratorKind.Cuda);
        }
        return data;
    }

    private static readonly Lazy<bool> CudaPresent = new(DeviceContext.CudaAvailable);
}

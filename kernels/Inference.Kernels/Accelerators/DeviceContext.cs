using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Inference.Kernels.Accelerators;

/// <summary>
/// The ILGPU context and the one accelerator the engine runs its kernels on. An accelerator and its
/// default stream are not thread-safe: whoever launches work holds <see cref="Gate"/>.
/// </summary>
public sealed class DeviceContext : IDisposable
{
    private readonly Context _context;

    private DeviceContext(Context context, Accelerator accelerator)
    {
        _context = context;
        Accelerator = accelerator;
        GridThreads = accelerator.AcceleratorType == AcceleratorType.CPU
            ? Math.Max(1, accelerator.MaxNumThreadsPerGroup)
            : accelerator.NumMultiprocessors * accelerator.MaxNumThreadsPerMultiprocessor;
    }

    public Accelerator Accelerator { get; }

    /// <summary>Serialises every use of the accelerator's stream.</summary>
    public Lock Gate { get; } = new();

    /// <summary>
    /// Threads launched by a grid-stride kernel: enough to fill the device, each looping over elements.
    /// On the CPU simulator a launch costs per thread, so one group is the right size.
    /// </summary>
    public int GridThreads { get; }

    public bool IsCuda => Accelerator.AcceleratorType == AcceleratorType.Cuda;

    /// <summary>A human-readable name for logs and progress, e.g. "CUDA: NVIDIA H100 80GB HBM3".</summary>
    public string Description => IsCuda
        ? $"CUDA: {Accelerator.Name}"
        : $"CPU: ILGPU CPU accelerator (GPU simulator, {Accelerator.MaxNumThreadsPerGroup} threads per group)";

    public static DeviceContext Create(AcceleratorKind kind)
    {
        var context = Context.Create(builder => builder.Default().EnableAlgorithms());
        try
        {
            Device? device = null;
            if (kind != AcceleratorKind.Cpu)
            {
                foreach (var candidate in context.GetCudaDevices())
                {
                    device = candidate;
                    break;
                }
                if (device is null && kind == AcceleratorKind.Cuda)
                {
                    throw new InvalidOperationException(
                        "Inference:Features:Accelerator is 'Cuda' but no CUDA device was found (is libcuda.so on the library path?).");
                }
            }
            device ??= context.GetCPUDevice(0);
            return new DeviceContext(context, device.CreateAccelerator(context));
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        _context.Dispose();
    }
}

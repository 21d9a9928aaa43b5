using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Inference.Kernels.Accelerators;

/// <summary>
/// The ILGPU context and the one accelerator the engine runs its kernels on. Neither an accelerator
/// nor its stream is thread-safe: in the engine one device executor owns this object and is the only
/// code that uses it; a <see cref="Features.FeatureTable"/> assumes a single caller.
/// </summary>
public sealed class DeviceContext : IDisposable
{
    private readonly Context _context;

    private DeviceContext(Context context, Accelerator accelerator, bool host)
    {
        _context = context;
        Accelerator = accelerator;
        IsHost = host;
        GridThreads = accelerator.AcceleratorType switch
        {
            AcceleratorType.CPU when host => Environment.ProcessorCount,
            AcceleratorType.CPU => Math.Max(1, accelerator.MaxNumThreadsPerGroup),
            _ => accelerator.NumMultiprocessors * accelerator.MaxNumThreadsPerMultiprocessor,
        };
    }

    /// <summary>The accelerator that owns the buffers (ILGPU's CPU accelerator for both CPU kinds).</summary>
    public Accelerator Accelerator { get; }

    /// <summary>
    /// Threads a grid-stride kernel is launched with when there are enough elements: enough to fill
    /// the device, each looping over elements. On the CPU backend, one per core.
    /// </summary>
    public int GridThreads { get; }

    public bool IsCuda => Accelerator.AcceleratorType == AcceleratorType.Cuda;

    /// <summary>Kernels run as plain methods over host memory (the CPU backend), not through ILGPU launches.</summary>
    public bool IsHost { get; }

    public AcceleratorKind Kind => IsCuda ? AcceleratorKind.Cuda : IsHost ? AcceleratorKind.Cpu : AcceleratorKind.CpuSimulator;

    /// <summary>A human-readable name for logs and progress, e.g. "CUDA: NVIDIA H100 80GB HBM3".</summary>
    public string Description => Kind switch
    {
        AcceleratorKind.Cuda => $"CUDA: {Accelerator.Name}",
        AcceleratorKind.Cpu => $"CPU: host backend ({GridThreads} threads)",
        _ => $"CPU: ILGPU CPU accelerator (GPU simulator, {Accelerator.MaxNumThreadsPerGroup} threads per group)",
    };

    /// <summary>
    /// Registers host memory with the device (CUDA host registration through ILGPU's page lock), so
    /// copies from it run as DMA without a staging copy. Null where kernels read host memory anyway.
    /// Call from the thread that owns this context; dispose to unregister.
    /// </summary>
    public IDisposable? PageLock(IntPtr address, long bytes) =>
        IsCuda ? Accelerator.CreatePageLockFromPinned<byte>(address, bytes) : null;

    public static DeviceContext Create(AcceleratorKind kind)
    {
        var context = Context.Create(builder => builder.Default().EnableAlgorithms());
        try
        {
            Device? device = null;
            if (kind is AcceleratorKind.Auto or AcceleratorKind.Cuda)
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
            bool host = device is null && kind != AcceleratorKind.CpuSimulator;
            device ??= context.GetCPUDevice(0);
            return new DeviceContext(context, device.CreateAccelerator(context), host);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>Whether a CUDA device is present (asks the driver; creates no accelerator).</summary>
    public static bool CudaAvailable()
    {
        using var context = Context.Create(builder => builder.Default());
        return context.GetCudaDevices().Count > 0;
    }

    /// <summary>Waits for the device's queued work (nothing to wait for on the CPU backend).</summary>
    public void Synchronize()
    {
        if (!IsHost)
        {
            Accelerator.Synchronize();
        }
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        _context.Dispose();
    }
}

namespace Inference.Kernels.Accelerators;

/// <summary>Which accelerator the engine asks for at start.</summary>
public enum AcceleratorKind
{
    /// <summary>CUDA when a CUDA device is present, else the CPU backend.</summary>
    Auto,

    /// <summary>A CUDA device; start fails when none is present.</summary>
    Cuda,

    /// <summary>
    /// The CPU backend: the same kernel methods run directly over host memory on a parallel loop,
    /// at host speed (no launch cost). What machines without a GPU use.
    /// </summary>
    Cpu,

    /// <summary>
    /// ILGPU's CPU accelerator, a GPU simulator (~0.2 ms per launch). Tests use it to run the kernels
    /// through ILGPU's compiler and launch path, as CUDA does, on machines without a GPU.
    /// </summary>
    CpuSimulator,
}

namespace Inference.Kernels.Accelerators;

/// <summary>Which accelerator the engine asks for at start.</summary>
public enum AcceleratorKind
{
    /// <summary>CUDA when a CUDA device is present, else the CPU accelerator.</summary>
    Auto,

    /// <summary>A CUDA device; start fails when none is present.</summary>
    Cuda,

    /// <summary>ILGPU's CPU accelerator (a GPU simulator that runs the same kernels).</summary>
    Cpu,
}

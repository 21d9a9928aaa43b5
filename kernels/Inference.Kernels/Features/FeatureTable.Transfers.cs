using System.Runtime.InteropServices;
using Inference.Kernels.Accelerators;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Features;

/// <summary>The table's host ↔ device copies (through <see cref="DeviceMemory"/>), and the per-event lateness priors a batch is given.</summary>
public sealed partial class FeatureTable
{
    /// <summary>
    /// Gives each event the newest time of its entity's earlier events in the batch (0 for its first)
    /// and uploads them; the time the entity held before the batch is added on the device.
    /// </summary>
    private void StagePriors(ReadOnlySpan<ulong> entities, ReadOnlySpan<long> times)
    {
        _newestInBatch.Clear();
        for (int i = 0; i < entities.Length; i++)
        {
            ref long seen = ref CollectionsMarshal.GetValueRefOrAddDefault(_newestInBatch, TableKey(entities[i]), out _);
            _hostPrior[i] = seen;
            seen = Math.Max(seen, times[i]);
        }
        Upload(_batchPrior, _hostPrior.AsSpan(0, entities.Length));
    }

    /// <summary>Copies host values into a device buffer at <paramref name="offset"/> (every host → device copy goes here).</summary>
    private void Upload<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, ReadOnlySpan<T> source, long offset = 0)
        where T : unmanaged => DeviceMemory.Upload(_device, buffer, source, offset);

    /// <summary>Copies device values at <paramref name="offset"/> into a host span (every device → host copy goes here).</summary>
    private void Download<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, Span<T> target, long offset = 0)
        where T : unmanaged => DeviceMemory.Download(_device, buffer, target, offset);

    /// <summary>Zeroes a device buffer (on the CPU backend, directly).</summary>
    private void Clear<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged => DeviceMemory.Clear(_device, buffer);
}

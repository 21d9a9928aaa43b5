using System.Diagnostics;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Features;

/// <summary>The table's host ↔ device copies (plain copies on the CPU backend), and the per-event lateness priors a batch is given.</summary>
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

    /// <summary>
    /// Copies host values into a device buffer at <paramref name="offset"/> (every host → device copy goes
    /// here). On the CPU backend the buffer is host memory: a plain copy, no ILGPU transfer objects.
    /// </summary>
    /// <remarks>
    /// ILGPU copies to and from a host address as given (its copies take the address as pinned), and the
    /// GC may move a managed array in the middle of one: host memory stays pinned while it is copied, or
    /// a read lands where the array used to be and the caller finds what it held before.
    /// </remarks>
    private unsafe void Upload<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, ReadOnlySpan<T> source, long offset = 0)
        where T : unmanaged
    {
        if (source.Length == 0)
        {
            return;
        }
        if (_device.IsHost)
        {
            source.CopyTo(HostMemory(buffer, offset, source.Length));
            return;
        }
        fixed (T* pinned = source)
        {
            buffer.View.SubView(offset, source.Length).CopyFromCPU(ref *pinned, source.Length);
        }
    }

    /// <summary>Copies device values at <paramref name="offset"/> into a host span (every device → host copy goes here; pinned, as in <see cref="Upload"/>).</summary>
    private unsafe void Download<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, Span<T> target, long offset = 0)
        where T : unmanaged
    {
        if (target.Length == 0)
        {
            return;
        }
        if (_device.IsHost)
        {
            HostMemory(buffer, offset, target.Length).CopyTo(target);
            return;
        }
        fixed (T* pinned = target)
        {
            buffer.View.SubView(offset, target.Length).CopyToCPU(ref *pinned, target.Length);
        }
    }

    /// <summary>Zeroes a device buffer (on the CPU backend, directly).</summary>
    private void Clear<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged
    {
        if (_device.IsHost)
        {
            HostMemory(buffer, 0, buffer.Length).Clear();
            return;
        }
        buffer.MemSetToZero();
    }

    /// <summary>On the CPU backend, part of a buffer as the host memory it is.</summary>
    private static unsafe Span<T> HostMemory<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, long offset, long length)
        where T : unmanaged
    {
        Debug.Assert(length == 0 || (offset >= 0 && offset + length <= buffer.Length), "A host copy stays inside its buffer.");
        return new Span<T>((T*)buffer.NativePtr + offset, checked((int)length));
    }
}

using System.Diagnostics;
using Inference.Kernels.Features;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Accelerators;

/// <summary>
/// Host ↔ device copies and kernel columns for every device-resident table: plain copies over host
/// memory on the CPU backend, ILGPU transfers (from pinned host memory) on CUDA and the simulator.
/// </summary>
/// <remarks>
/// ILGPU copies to and from a host address as given (its copies take the address as pinned), and the
/// GC may move a managed array in the middle of one: host memory stays pinned while it is copied, or
/// a read lands where the array used to be and the caller finds what it held before.
/// </remarks>
internal static class DeviceMemory
{
    /// <summary>Copies host values into a device buffer at <paramref name="offset"/>.</summary>
    public static unsafe void Upload<T>(DeviceContext device, MemoryBuffer1D<T, Stride1D.Dense> buffer, ReadOnlySpan<T> source, long offset = 0)
        where T : unmanaged
    {
        if (source.Length == 0)
        {
            return;
        }
        if (device.IsHost)
        {
            source.CopyTo(HostMemory(buffer, offset, source.Length));
            return;
        }
        fixed (T* pinned = source)
        {
            buffer.View.SubView(offset, source.Length).CopyFromCPU(ref *pinned, source.Length);
        }
    }

    /// <summary>Copies device values at <paramref name="offset"/> into a host span.</summary>
    public static unsafe void Download<T>(DeviceContext device, MemoryBuffer1D<T, Stride1D.Dense> buffer, Span<T> target, long offset = 0)
        where T : unmanaged
    {
        if (target.Length == 0)
        {
            return;
        }
        if (device.IsHost)
        {
            HostMemory(buffer, offset, target.Length).CopyTo(target);
            return;
        }
        fixed (T* pinned = target)
        {
            buffer.View.SubView(offset, target.Length).CopyToCPU(ref *pinned, target.Length);
        }
    }

    /// <summary>Zeroes a device buffer.</summary>
    public static void Clear<T>(DeviceContext device, MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged => Clear(device, buffer, 0, buffer.Length);

    /// <summary>Zeroes <paramref name="count"/> elements of a device buffer from <paramref name="offset"/>.</summary>
    public static void Clear<T>(DeviceContext device, MemoryBuffer1D<T, Stride1D.Dense> buffer, long offset, long count)
        where T : unmanaged
    {
        if (count == 0)
        {
            return;
        }
        if (device.IsHost)
        {
            HostMemory(buffer, offset, count).Clear();
            return;
        }
        ArrayView<T> view = buffer.View;
        view.SubView(offset, count).MemSetToZero();
    }

    /// <summary>Copies <paramref name="count"/> elements at <paramref name="offset"/> from one device buffer to the same place in another.</summary>
    public static void Copy<T>(DeviceContext device, MemoryBuffer1D<T, Stride1D.Dense> source, MemoryBuffer1D<T, Stride1D.Dense> target, long offset, long count)
        where T : unmanaged
    {
        if (count == 0)
        {
            return;
        }
        if (device.IsHost)
        {
            HostMemory(source, offset, count).CopyTo(HostMemory(target, offset, count));
            return;
        }
        ArrayView<T> from = source.View;
        ArrayView<T> to = target.View;
        var destination = to.SubView(offset, count);
        from.SubView(offset, count).CopyTo(in destination);
    }

    /// <summary>A buffer as a kernel column (on the CPU backend it carries the host address too).</summary>
    public static Column<T> Col<T>(DeviceContext device, MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged => new(buffer.View, device.IsHost ? buffer.NativePtr.ToInt64() : 0);

    /// <summary>On the CPU backend, part of a buffer as the host memory it is.</summary>
    private static unsafe Span<T> HostMemory<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, long offset, long length)
        where T : unmanaged
    {
        Debug.Assert(length == 0 || (offset >= 0 && offset + length <= buffer.Length), "A host copy stays inside its buffer.");
        return new Span<T>((T*)buffer.NativePtr + offset, checked((int)length));
    }
}

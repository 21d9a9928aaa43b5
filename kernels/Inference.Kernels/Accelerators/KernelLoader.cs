using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Accelerators;

/// <summary>
/// Turns a grid-stride kernel method, <c>(thread, stride, args…)</c>, into a launch on the device:
/// an ILGPU kernel on CUDA and on the simulator, or on the CPU backend the very same method called
/// directly over host memory by one thread per worker (no compile, no launch cost). Launches take
/// the thread count from <see cref="Threads"/>; the stride passed is that count, so every element
/// is visited once whichever way the kernel runs.
/// </summary>
internal sealed class KernelLoader(DeviceContext device)
{
    /// <summary>On the CPU backend, a worker per this many elements: below it one thread is faster than waking others.</summary>
    private const int HostElementsPerWorker = 4_096;

    /// <summary>Threads to launch a grid-stride kernel over <paramref name="elements"/> with.</summary>
    public int Threads(long elements)
    {
        if (elements <= 0)
        {
            return 1;
        }
        if (device.IsHost)
        {
            return (int)Math.Clamp((elements + HostElementsPerWorker - 1) / HostElementsPerWorker, 1, device.GridThreads);
        }
        return (int)Math.Min(elements, device.GridThreads);
    }

    public Action<Index1D, int, T1> Load<T1>(Action<Index1D, int, T1> kernel)
        where T1 : struct
    {
        if (!device.IsHost)
        {
            return device.Accelerator.LoadAutoGroupedStreamKernel(kernel);
        }
        return (threads, stride, a) =>
        {
            if (threads.X == 1)
            {
                kernel(0, stride, a);
                return;
            }
            Parallel.For(0, threads.X, t => kernel(t, stride, a));
        };
    }

    public Action<Index1D, int, T1, T2> Load<T1, T2>(Action<Index1D, int, T1, T2> kernel)
        where T1 : struct where T2 : struct
    {
        if (!device.IsHost)
        {
            return device.Accelerator.LoadAutoGroupedStreamKernel(kernel);
        }
        return (threads, stride, a, b) =>
        {
            if (threads.X == 1)
            {
                kernel(0, stride, a, b);
                return;
            }
            Parallel.For(0, threads.X, t => kernel(t, stride, a, b));
        };
    }

    public Action<Index1D, int, T1, T2, T3> Load<T1, T2, T3>(Action<Index1D, int, T1, T2, T3> kernel)
        where T1 : struct where T2 : struct where T3 : struct
    {
        if (!device.IsHost)
        {
            return device.Accelerator.LoadAutoGroupedStreamKernel(kernel);
        }
        return (threads, stride, a, b, c) =>
        {
            if (threads.X == 1)
            {
                kernel(0, stride, a, b, c);
                return;
            }
            Parallel.For(0, threads.X, t => kernel(t, stride, a, b, c));
        };
    }

    public Action<Index1D, int, T1, T2, T3, T4> Load<T1, T2, T3, T4>(Action<Index1D, int, T1, T2, T3, T4> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct
    {
        if (!device.IsHost)
        {
            return device.Accelerator.LoadAutoGroupedStreamKernel(kernel);
        }
        return (threads, stride, a, b, c, d) =>
        {
            if (threads.X == 1)
            {
                kernel(0, stride, a, b, c, d);
                return;
            }
            Parallel.For(0, threads.X, t => kernel(t, stride, a, b, c, d));
        };
    }

    public Action<Index1D, int, T1, T2, T3, T4, T5> Load<T1, T2, T3, T4, T5>(Action<Index1D, int, T1, T2, T3, T4, T5> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct
    {
        if (!device.IsHost)
        {
            return device.Accelerator.LoadAutoGroupedStreamKernel(kernel);
        }
        return (threads, stride, a, b, c, d, e) =>
        {
            if (threads.X == 1)
            {
                kernel(0, stride, a, b, c, d, e);
                return;
            }
            Parallel.For(0, threads.X, t => kernel(t, stride, a, b, c, d, e));
        };
    }
}

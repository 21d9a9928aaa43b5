using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Accelerators;

/// <summary>
/// Turns a grid-stride kernel method, <c>(thread, stride, args…)</c>, into a launch on the device:
/// an ILGPU kernel on CUDA and on the simulator, or on the CPU backend the very same method called
/// directly over host memory by one thread per worker (no compile, no launch cost). Launches take
/// the thread count from <see cref="Threads"/> and pass it as the stride too, so every element is
/// visited once whichever way the kernel runs.
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

    public Action<Index1D, int, T1, T2> Load<T1, T2>(Action<Index1D, int, T1, T2> kernel)
        where T1 : struct where T2 : struct =>
        device.IsHost
            ? (workers, _, a, b) => OnHost(workers, (t, stride) => kernel(t, stride, a, b))
            : device.Accelerator.LoadAutoGroupedStreamKernel(kernel);

    public Action<Index1D, int, T1, T2, T3> Load<T1, T2, T3>(Action<Index1D, int, T1, T2, T3> kernel)
        where T1 : struct where T2 : struct where T3 : struct =>
        device.IsHost
            ? (workers, _, a, b, c) => OnHost(workers, (t, stride) => kernel(t, stride, a, b, c))
            : device.Accelerator.LoadAutoGroupedStreamKernel(kernel);

    public Action<Index1D, int, T1, T2, T3, T4> Load<T1, T2, T3, T4>(Action<Index1D, int, T1, T2, T3, T4> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct =>
        device.IsHost
            ? (workers, _, a, b, c, d) => OnHost(workers, (t, stride) => kernel(t, stride, a, b, c, d))
            : device.Accelerator.LoadAutoGroupedStreamKernel(kernel);

    public Action<Index1D, int, T1, T2, T3, T4, T5> Load<T1, T2, T3, T4, T5>(Action<Index1D, int, T1, T2, T3, T4, T5> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        device.IsHost
            ? (workers, _, a, b, c, d, e) => OnHost(workers, (t, stride) => kernel(t, stride, a, b, c, d, e))
            : device.Accelerator.LoadAutoGroupedStreamKernel(kernel);

    /// <summary>
    /// Runs a grid-stride body on the CPU backend, one grid thread per worker. Each worker walks the
    /// elements in order, every workers-th one: the hardware prefetcher follows that. (Giving each
    /// worker runs of neighbouring elements instead, to spare the cache lines of per-event columns the
    /// two cores both write, was measured slower: the runs break the sequential walk.)
    /// </summary>
    private static void OnHost(Index1D workers, Action<int, int> body)
    {
        if (workers.X <= 1)
        {
            body(0, 1);
            return;
        }
        Parallel.For(0, workers.X, t => body(t, workers.X));
    }
}

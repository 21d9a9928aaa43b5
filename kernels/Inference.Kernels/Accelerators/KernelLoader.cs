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
/// <remarks>
/// On the CPU backend a launch allocates nothing: each loaded kernel keeps one launch object whose
/// arguments are overwritten per launch (a loader serves one caller, its table's owner), and the
/// workers are this loader's own threads, woken per launch, not thread-pool work items.
/// </remarks>
/// <param name="device">The device the kernels run on.</param>
/// <param name="hostThreads">On the CPU backend, the most threads a launch uses (the device's, one per core, unless given).</param>
internal sealed class KernelLoader(DeviceContext device, int? hostThreads = null) : IDisposable
{
    private readonly int _hostThreads = Math.Max(1, hostThreads ?? device.GridThreads);

    /// <summary>On the CPU backend, a worker per this many elements: below it one thread is faster than waking others.</summary>
    private const int HostElementsPerWorker = 4_096;

    private HostWorkers? _workers;

    /// <summary>Threads to launch a grid-stride kernel over <paramref name="elements"/> with.</summary>
    public int Threads(long elements)
    {
        if (elements <= 0)
        {
            return 1;
        }
        if (device.IsHost)
        {
            return (int)Math.Clamp((elements + HostElementsPerWorker - 1) / HostElementsPerWorker, 1, _hostThreads);
        }
        return (int)Math.Min(elements, device.GridThreads);
    }

    public Action<Index1D, int, T1, T2> Load<T1, T2>(Action<Index1D, int, T1, T2> kernel)
        where T1 : struct where T2 : struct =>
        device.IsHost ? new HostKernel<T1, T2, byte, byte, byte>(Workers, kernel).Launch : device.Accelerator.LoadAutoGroupedStreamKernel(kernel);

    public Action<Index1D, int, T1, T2, T3> Load<T1, T2, T3>(Action<Index1D, int, T1, T2, T3> kernel)
        where T1 : struct where T2 : struct where T3 : struct =>
        device.IsHost ? new HostKernel<T1, T2, T3, byte, byte>(Workers, kernel).Launch : device.Accelerator.LoadAutoGroupedStreamKernel(kernel);

    public Action<Index1D, int, T1, T2, T3, T4> Load<T1, T2, T3, T4>(Action<Index1D, int, T1, T2, T3, T4> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct =>
        device.IsHost ? new HostKernel<T1, T2, T3, T4, byte>(Workers, kernel).Launch : device.Accelerator.LoadAutoGroupedStreamKernel(kernel);

    public Action<Index1D, int, T1, T2, T3, T4, T5> Load<T1, T2, T3, T4, T5>(Action<Index1D, int, T1, T2, T3, T4, T5> kernel)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct =>
        device.IsHost ? new HostKernel<T1, T2, T3, T4, T5>(Workers, kernel).Launch : device.Accelerator.LoadAutoGroupedStreamKernel(kernel);

    private HostWorkers Workers => _workers ??= new HostWorkers(_hostThreads);

    public void Dispose() => _workers?.Dispose();

    /// <summary>A grid-stride body the host workers run: thread <c>t</c> of <c>stride</c>.</summary>
    private interface IHostBody
    {
        void Run(int thread, int stride);
    }

    /// <summary>
    /// One loaded kernel on the CPU backend: the launch stores its arguments here and runs the body
    /// on the workers (unused type parameters are <see cref="byte"/> placeholders).
    /// </summary>
    private sealed class HostKernel<T1, T2, T3, T4, T5> : IHostBody
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct
    {
        private readonly HostWorkers _workers;
        private readonly Action<int, int, HostKernel<T1, T2, T3, T4, T5>> _body;
        private T1 _a;
        private T2 _b;
        private T3 _c;
        private T4 _d;
        private T5 _e;

        public HostKernel(HostWorkers workers, Action<Index1D, int, T1, T2> kernel)
        {
            _workers = workers;
            _body = (t, stride, k) => kernel(t, stride, k._a, k._b);
        }

        public HostKernel(HostWorkers workers, Action<Index1D, int, T1, T2, T3> kernel)
        {
            _workers = workers;
            _body = (t, stride, k) => kernel(t, stride, k._a, k._b, k._c);
        }

        public HostKernel(HostWorkers workers, Action<Index1D, int, T1, T2, T3, T4> kernel)
        {
            _workers = workers;
            _body = (t, stride, k) => kernel(t, stride, k._a, k._b, k._c, k._d);
        }

        public HostKernel(HostWorkers workers, Action<Index1D, int, T1, T2, T3, T4, T5> kernel)
        {
            _workers = workers;
            _body = (t, stride, k) => kernel(t, stride, k._a, k._b, k._c, k._d, k._e);
        }

        public void Launch(Index1D threads, int stride, T1 a, T2 b) => Launch(threads, a, b, default, default, default);

        public void Launch(Index1D threads, int stride, T1 a, T2 b, T3 c) => Launch(threads, a, b, c, default, default);

        public void Launch(Index1D threads, int stride, T1 a, T2 b, T3 c, T4 d) => Launch(threads, a, b, c, d, default);

        public void Launch(Index1D threads, int stride, T1 a, T2 b, T3 c, T4 d, T5 e) => Launch(threads, a, b, c, d, e);

        public void Run(int thread, int stride) => _body(thread, stride, this);

        private void Launch(Index1D threads, T1 a, T2 b, T3 c, T4 d, T5 e)
        {
            (_a, _b, _c, _d, _e) = (a, b, c, d, e);
            _workers.Run(this, threads.X);
        }
    }

    /// <summary>
    /// The CPU backend's worker threads, started on first use. A launch of n threads runs thread 0 on
    /// the caller and wakes n - 1 workers; it returns when all are done. Each walks the elements in
    /// order, every n-th one: the hardware prefetcher follows that. (Giving each worker runs of
    /// neighbouring elements instead, to spare the cache lines of per-event columns the cores both
    /// write, was measured slower: the runs break the sequential walk.)
    /// </summary>
    private sealed class HostWorkers : IDisposable
    {
        private readonly Thread[] _threads;
        private readonly SemaphoreSlim _start = new(0);
        private readonly ManualResetEventSlim _done = new(false, spinCount: 200);
        private IHostBody? _body;
        private int _stride;
        private int _next;
        private int _remaining;
        private volatile bool _stopping;
        private Exception? _failure;

        public HostWorkers(int threads)
        {
            _threads = new Thread[Math.Max(0, threads - 1)];
            for (int i = 0; i < _threads.Length; i++)
            {
                _threads[i] = new Thread(Work) { IsBackground = true, Name = $"inference-host-kernel-{i + 1}" };
                _threads[i].Start();
            }
        }

        public void Run(IHostBody body, int threads)
        {
            threads = Math.Min(threads, _threads.Length + 1);
            if (threads <= 1)
            {
                body.Run(0, 1);
                return;
            }
            _body = body;
            _stride = threads;
            _next = 0;
            _remaining = threads - 1;
            _failure = null;
            _done.Reset();
            _start.Release(threads - 1);
            try
            {
                body.Run(0, threads);
            }
            finally
            {
                // The workers read this launch's arguments: wait for them even when thread 0 failed.
                _done.Wait();
            }
            if (_failure is { } failure)
            {
                throw new AggregateException("A host kernel thread failed.", failure);
            }
        }

        private void Work()
        {
            while (true)
            {
                _start.Wait();
                if (_stopping)
                {
                    return;
                }
                int thread = Interlocked.Increment(ref _next);
                try
                {
                    _body!.Run(thread, _stride);
                }
                catch (Exception error)
                {
                    // Reported on the launching thread, as Parallel.For would.
                    _failure = error;
                }
                if (Interlocked.Decrement(ref _remaining) == 0)
                {
                    _done.Set();
                }
            }
        }

        public void Dispose()
        {
            _stopping = true;
            // One core: no workers to wake (a release of none is an error).
            if (_threads.Length > 0)
            {
                _start.Release(_threads.Length);
            }
        }
    }
}

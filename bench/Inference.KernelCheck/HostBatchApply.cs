using System.Diagnostics;
using System.Runtime.InteropServices;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.KernelCheck;

/// <summary>
/// Upload + apply of batches that live in native host memory, as the engine's micro-batches do:
/// registered with the device (page-locked, CUDA host registration) or plain pageable memory. On the
/// CPU backend registration does nothing and both read host memory.
/// </summary>
internal sealed unsafe class HostBatchApply : IApplyRunner
{
    private readonly FeatureTable _table;
    private readonly int _size;
    private readonly int _features;
    private readonly ulong* _keys;
    private readonly long* _times;
    private readonly float* _values;
    private readonly IDisposable?[] _locks = new IDisposable?[3];

    public HostBatchApply(DeviceContext device, int entities, int features, int batchSize, bool pageLocked)
    {
        _table = new FeatureTable(device, Bench.Plan(features), new FeatureTableOptions { InitialCapacity = entities, MaxCapacity = entities, MaxBatchEvents = batchSize });
        for (int fill = 0; fill < 4 * entities / batchSize; fill++)
        {
            var b = Bench.MakeBatch(entities, features, batchSize, fill);
            _table.Apply(new ArrayBatch(b.Keys, b.Times, b.Numeric, []));
        }
        var timed = Bench.MakeBatch(entities, features, batchSize, 100);
        _size = batchSize;
        // Numeric fields, not features: several features read one field.
        _features = timed.Numeric.Length;
        _keys = (ulong*)NativeMemory.AlignedAlloc((nuint)(batchSize * sizeof(ulong)), 64);
        _times = (long*)NativeMemory.AlignedAlloc((nuint)(batchSize * sizeof(long)), 64);
        _values = (float*)NativeMemory.AlignedAlloc((nuint)(batchSize * _features * sizeof(float)), 64);
        timed.Keys.CopyTo(new Span<ulong>(_keys, batchSize));
        timed.Times.CopyTo(new Span<long>(_times, batchSize));
        for (int f = 0; f < _features; f++)
        {
            timed.Numeric[f].CopyTo(new Span<float>(_values + f * batchSize, batchSize));
        }
        if (pageLocked)
        {
            _locks[0] = device.PageLock((IntPtr)_keys, batchSize * sizeof(ulong));
            _locks[1] = device.PageLock((IntPtr)_times, batchSize * sizeof(long));
            _locks[2] = device.PageLock((IntPtr)_values, (long)batchSize * _features * sizeof(float));
        }
    }

    public double Run(double seconds)
    {
        var clock = Stopwatch.StartNew();
        long applied = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            _table.Apply(new NativeBatch(_keys, _times, _values, _size));
            applied += _size;
        }
        return applied / clock.Elapsed.TotalSeconds;
    }

    public void Dispose()
    {
        foreach (var pageLock in _locks)
        {
            pageLock?.Dispose();
        }
        _table.Dispose();
        NativeMemory.AlignedFree(_keys);
        NativeMemory.AlignedFree(_times);
        NativeMemory.AlignedFree(_values);
    }

    private readonly struct NativeBatch(ulong* keys, long* times, float* values, int size) : IBatchColumns
    {
        public int Count => size;

        public ReadOnlySpan<ulong> Entities => new(keys, size);

        public ReadOnlySpan<long> Times => new(times, size);

        public ReadOnlySpan<float> Numeric(int column) => new(values + column * size, size);

        public ReadOnlySpan<ulong> Keys(int column) => [];

        public int PinnedStride => size;
    }
}

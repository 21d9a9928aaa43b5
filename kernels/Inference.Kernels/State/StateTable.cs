using System.Runtime.InteropServices;
using Inference.Kernels.Accelerators;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.State;

/// <summary>
/// Per-entity aggregates (count, per-field sum and half-life decayed sum by event time) resident on
/// the accelerator, indexed by slot. Slots are assigned by the caller (<see cref="EntitySlotMap"/>).
/// Every operation holds the device gate, so a read never sees half of an applied batch.
/// </summary>
public sealed partial class StateTable : IDisposable
{
    private readonly DeviceContext _device;
    private readonly double _inverseHalfLife;

    private readonly MemoryBuffer1D<long, Stride1D.Dense> _count;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _maxTime;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _anchor;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _sum;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _decayed;

    // Staging for one batch of events and one chunk of gathered rows, reused across calls.
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _eventSlots;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _eventTimes;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _eventValues;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _touched;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _gatherSlots;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _gatherOut;

    private readonly Action<Index1D, int, int, ArrayView<int>, ArrayView<long>, ArrayView<long>> _raiseMaxTime;
    private readonly Action<Index1D, int, int, int, double, ArrayView<int>, ArrayView<long>, ArrayView<long>, ArrayView<double>> _reanchor;
    private readonly Action<Index1D, int, int, int, double, ArrayView<int>, ArrayView<long>, ArrayView<float>, ArrayView<long>, ArrayView<long>, ArrayView<double>, ArrayView<double>> _accumulate;
    private readonly Action<Index1D, int, int, int, long, double, ArrayView<int>, ArrayView<long>, ArrayView<long>, ArrayView<double>, ArrayView<double>, ArrayView<float>> _gather;

    public StateTable(DeviceContext device, int capacity, int fieldCount, double halfLifeMs, int maxBatchEvents, int maxGatherRows = 4096)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfNegative(fieldCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBatchEvents);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxGatherRows);
        if (!(halfLifeMs > 0) || double.IsInfinity(halfLifeMs))
        {
            throw new ArgumentOutOfRangeException(nameof(halfLifeMs), halfLifeMs, "The half-life must be a positive, finite number of milliseconds.");
        }

        _device = device;
        Capacity = capacity;
        FieldCount = fieldCount;
        HalfLifeMs = halfLifeMs;
        MaxBatchEvents = maxBatchEvents;
        MaxGatherRows = maxGatherRows;
        _inverseHalfLife = 1.0 / halfLifeMs;

        var accelerator = device.Accelerator;
        _count = accelerator.Allocate1D<long>(capacity);
        _maxTime = accelerator.Allocate1D<long>(capacity);
        _anchor = accelerator.Allocate1D<long>(capacity);
        _sum = accelerator.Allocate1D<double>(Math.Max(1L, (long)capacity * fieldCount));
        _decayed = accelerator.Allocate1D<double>(Math.Max(1L, (long)capacity * fieldCount));
        _eventSlots = accelerator.Allocate1D<int>(maxBatchEvents);
        _eventTimes = accelerator.Allocate1D<long>(maxBatchEvents);
        _eventValues = accelerator.Allocate1D<float>(Math.Max(1L, (long)maxBatchEvents * fieldCount));
        _touched = accelerator.Allocate1D<int>(maxBatchEvents);
        _gatherSlots = accelerator.Allocate1D<int>(maxGatherRows);
        _gatherOut = accelerator.Allocate1D<float>((long)maxGatherRows * FeatureWidth);
        _count.MemSetToZero();
        _maxTime.MemSetToZero();
        _anchor.MemSetToZero();
        _sum.MemSetToZero();
        _decayed.MemSetToZero();

        // Loaded once per table; the first load compiles (~200 ms on the CPU accelerator).
        _raiseMaxTime = accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, ArrayView<int>, ArrayView<long>, ArrayView<long>>(FeatureKernels.RaiseMaxTime);
        _reanchor = accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, double, ArrayView<int>, ArrayView<long>, ArrayView<long>, ArrayView<double>>(FeatureKernels.Reanchor);
        _accumulate = accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, double, ArrayView<int>, ArrayView<long>, ArrayView<float>, ArrayView<long>, ArrayView<long>, ArrayView<double>, ArrayView<double>>(FeatureKernels.Accumulate);
        _gather = accelerator.LoadAutoGroupedStreamKernel<Index1D, int, int, int, long, double, ArrayView<int>, ArrayView<long>, ArrayView<long>, ArrayView<double>, ArrayView<double>, ArrayView<float>>(FeatureKernels.Gather);
        accelerator.Synchronize();
    }

    public int Capacity { get; }

    public int FieldCount { get; }

    public double HalfLifeMs { get; }

    public int MaxBatchEvents { get; }

    public int MaxGatherRows { get; }

    /// <summary>Model-input columns written per gathered row: log1p(count), then mean and decayed sum per field.</summary>
    public int FeatureWidth => 1 + 2 * FieldCount;

    public string AcceleratorDescription => _device.Description;

    /// <summary>
    /// Applies one batch of events whose values are field-major in one span: field <c>f</c> of event
    /// <c>i</c> at <c>f * valueStride + i</c> (the stride defaults to the event count).
    /// </summary>
    public void Apply(ReadOnlySpan<int> slots, ReadOnlySpan<long> times, ReadOnlySpan<float> values, ReadOnlySpan<int> touchedSlots, int valueStride = -1)
    {
        if (valueStride < 0)
        {
            valueStride = slots.Length;
        }
        if (valueStride < slots.Length || (FieldCount > 0 && values.Length < (FieldCount - 1) * valueStride + slots.Length))
        {
            throw new ArgumentException("The value span is too short for the fields, stride and event count.", nameof(values));
        }
        Apply(slots, times, touchedSlots, new StridedColumns(values, valueStride, slots.Length));
    }

    /// <summary>
    /// Applies one batch of events: <paramref name="slots"/> and <paramref name="times"/> per event,
    /// one value column per field from <paramref name="columns"/>, and <paramref name="touchedSlots"/>
    /// listing each slot of the batch exactly once. Returns when the update has completed on the device.
    /// </summary>
    public void Apply<TColumns>(ReadOnlySpan<int> slots, ReadOnlySpan<long> times, ReadOnlySpan<int> touchedSlots, in TColumns columns)
        where TColumns : IFieldColumns, allows ref struct
    {
        int n = slots.Length;
        if (n == 0)
        {
            return;
        }
        if (n > MaxBatchEvents)
        {
            throw new ArgumentException($"A batch holds at most {MaxBatchEvents} events; got {n}.", nameof(slots));
        }
        if (times.Length != n || touchedSlots.Length == 0 || touchedSlots.Length > n)
        {
            throw new ArgumentException("Batch columns disagree in length.");
        }
        // An out-of-range index on the device terminates the process: check on the host first.
        foreach (int slot in slots)
        {
            if ((uint)slot >= (uint)Capacity)
            {
                throw new ArgumentOutOfRangeException(nameof(slots), slot, $"Slot outside the table (capacity {Capacity}).");
            }
        }
        for (int f = 0; f < FieldCount; f++)
        {
            if (columns.Column(f).Length != n)
            {
                throw new ArgumentException($"Field column {f} holds {columns.Column(f).Length} values for {n} events.", nameof(columns));
            }
        }

        lock (_device.Gate)
        {
            Upload(_eventSlots, slots);
            Upload(_eventTimes, times);
            for (int f = 0; f < FieldCount; f++)
            {
                var field = columns.Column(f);
                _eventValues.View.SubView((long)f * n, n).CopyFromCPU(ref MemoryMarshal.GetReference(field), n);
            }
            Upload(_touched, touchedSlots);
            int threads = Math.Min(n, _device.GridThreads);
            _raiseMaxTime(threads, threads, n, _eventSlots.View, _eventTimes.View, _maxTime.View);
            int touchedThreads = Math.Min(touchedSlots.Length, _device.GridThreads);
            _reanchor(touchedThreads, touchedThreads, touchedSlots.Length, FieldCount, _inverseHalfLife, _touched.View, _maxTime.View, _anchor.View, _decayed.View);
            _accumulate(threads, threads, n, FieldCount, _inverseHalfLife, _eventSlots.View, _eventTimes.View, _eventValues.View, _count.View, _anchor.View, _sum.View, _decayed.View);
            _device.Accelerator.Synchronize();
        }
    }

    /// <summary>
    /// Writes <see cref="FeatureWidth"/> columns per slot into <paramref name="output"/> (row-major),
    /// with decayed sums expressed as of <paramref name="nowMs"/>. A negative slot reads as an empty entity.
    /// </summary>
    public void Gather(ReadOnlySpan<int> slots, long nowMs, Span<float> output)
    {
        if (output.Length < slots.Length * FeatureWidth)
        {
            throw new ArgumentException($"The output needs {slots.Length * FeatureWidth} floats.", nameof(output));
        }
        foreach (int slot in slots)
        {
            if (slot >= Capacity)
            {
                throw new ArgumentOutOfRangeException(nameof(slots), slot, $"Slot outside the table (capacity {Capacity}).");
            }
        }

        lock (_device.Gate)
        {
            for (int start = 0; start < slots.Length; start += MaxGatherRows)
            {
                int rows = Math.Min(MaxGatherRows, slots.Length - start);
                Upload(_gatherSlots, slots.Slice(start, rows));
                int threads = Math.Min(rows, _device.GridThreads);
                _gather(threads, threads, rows, FieldCount, nowMs, _inverseHalfLife, _gatherSlots.View, _count.View, _anchor.View, _sum.View, _decayed.View, _gatherOut.View);
                _device.Accelerator.Synchronize();
                var destination = output.Slice(start * FeatureWidth, rows * FeatureWidth);
                _gatherOut.View.SubView(0, destination.Length).CopyToCPU(ref MemoryMarshal.GetReference(destination), destination.Length);
            }
        }
    }

    /// <summary>Reads one slot's raw aggregates back to the host (diagnostics and tests; not a hot path).</summary>
    public EntityState Read(int slot)
    {
        if ((uint)slot >= (uint)Capacity)
        {
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"Slot outside the table (capacity {Capacity}).");
        }
        var sums = new double[FieldCount];
        var decayed = new double[FieldCount];
        long count = 0, maxTime = 0;
        lock (_device.Gate)
        {
            _count.View.SubView(slot, 1).CopyToCPU(ref count, 1);
            _maxTime.View.SubView(slot, 1).CopyToCPU(ref maxTime, 1);
            if (FieldCount > 0)
            {
                _sum.View.SubView((long)slot * FieldCount, FieldCount).CopyToCPU(sums);
                _decayed.View.SubView((long)slot * FieldCount, FieldCount).CopyToCPU(decayed);
            }
        }
        return new EntityState(count, maxTime, sums, decayed);
    }

    private static void Upload<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, ReadOnlySpan<T> source)
        where T : unmanaged
    {
        buffer.View.SubView(0, source.Length).CopyFromCPU(ref MemoryMarshal.GetReference(source), source.Length);
    }

    public void Dispose()
    {
        lock (_device.Gate)
        {
            foreach (var buffer in new MemoryBuffer[] { _count, _maxTime, _anchor, _sum, _decayed, _eventSlots, _eventTimes, _eventValues, _touched, _gatherSlots, _gatherOut })
            {
                buffer.Dispose();
            }
        }
    }
}

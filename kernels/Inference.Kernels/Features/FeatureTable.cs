using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Inference.Kernels.Accelerators;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Features;

/// <summary>
/// Declared features of every entity, resident on the accelerator: an open-addressing entity-key →
/// slot table (compare-and-swap inserts) and per-slot state laid out by the <see cref="FeaturePlan"/>.
/// The table grows by doubling up to its maximum capacity, then evicts the idlest entities (by event
/// time); <see cref="EvictIdle"/> and <see cref="EvictOlderThan"/> apply a TTL, the latter a slice
/// at a time. Not thread-safe: one owner (the engine's device executor) calls it, so a read always
/// falls between two batches and sees either none or all of each.
/// </summary>
public sealed partial class FeatureTable : IDisposable
{
    private readonly DeviceContext _device;
    private readonly FeatureTableOptions _options;

    // Plan
    private readonly MemoryBuffer1D<FeatureDescriptor, Stride1D.Dense> _planDescriptors;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _longInit;
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _doubleInit;

    // Batch staging and scratch
    private readonly MemoryBuffer1D<ulong, Stride1D.Dense> _batchKeys;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _batchTimes;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _batchNumeric;
    private readonly MemoryBuffer1D<ulong, Stride1D.Dense> _batchKeyColumns;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _batchBucket;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _batchWon;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _batchSlot;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _batchTouched;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _batchShared;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _batchCounters;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _batchLate;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _batchPrior;

    // Reads
    private readonly MemoryBuffer1D<ulong, Stride1D.Dense> _readKeys;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _readSlots;
    private readonly MemoryBuffer1D<long, Stride1D.Dense> _readTimes;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _readOutput;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _readInexact;
    private readonly MemoryBuffer1D<ulong, Stride1D.Dense> _readLastKeys;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _victimCount;

    private readonly ulong[] _hostKeys;
    private readonly int[] _hostInexact;
    private readonly int[] _hostCounters = new int[3];
    private readonly long[] _hostLate;
    private readonly long[] _hostPrior;
    private readonly Dictionary<ulong, long> _newestInBatch = [];
    private readonly long _minLateness;
    private int _sequence;
    private readonly bool _hasWindows;
    private readonly bool _needsAnchor;
    private int _free;

    private readonly KernelLoader _kernels;
    private readonly Action<Index1D, int, HashView, BatchView> _insertKeys;
    private readonly Action<Index1D, int, HashView, BatchView, SlotView, FreeView, PlanView> _allocateSlots;
    private readonly Action<Index1D, int, int, HashView, BatchView, SlotView> _resolveSlots;
    private readonly Action<Index1D, int, BatchView, SlotView, PlanView> _advanceWindows;
    private readonly Action<Index1D, int, BatchView, SlotView, PlanView> _reanchor;
    private readonly Action<Index1D, int, BatchView, SlotView, PlanView> _accumulate;
    private readonly Action<Index1D, int, HashView, ReadView> _lookup;
    private readonly Action<Index1D, int, HashView, ReadView, SlotView, PlanView> _gather;
    private readonly Action<Index1D, int, SliceView, HashView, SlotView> _rebuild;
    private readonly Action<Index1D, int, SliceView, HashView> _clearHash;
    private readonly Action<Index1D, int, SliceView, SlotView, VictimView> _selectVictims;
    private readonly Action<Index1D, int, int, VictimView, HashView, SlotView, FreeView> _evict;
    private readonly Action<Index1D, int, int, HashView, BatchView, SlotView> _pin;
    private readonly Action<Index1D, int, int, int, SlotView, ArrayView<long>> _sampleTimes;

    public FeatureTable(DeviceContext device, FeaturePlan plan, FeatureTableOptions options)
    {
        if (options.InitialCapacity <= 0 || options.MaxCapacity < options.InitialCapacity)
        {
            throw new ArgumentException($"Capacities must satisfy 0 < initial ({options.InitialCapacity}) <= max ({options.MaxCapacity}).", nameof(options));
        }
        if (options.MaxBatchEvents <= 0 || options.MaxBatchEvents > options.MaxCapacity || options.MaxGatherRows <= 0)
        {
            throw new ArgumentException($"A batch holds 1 to {options.MaxCapacity} events (got {options.MaxBatchEvents}); gathers at least 1 row.", nameof(options));
        }
        if (!(options.EvictionFraction is > 0 and <= 1))
        {
            throw new ArgumentException($"The eviction fraction must be in (0, 1] (got {options.EvictionFraction}).", nameof(options));
        }
        _device = device;
        _options = options;
        Plan = plan;
        _hasWindows = plan.HasWindows;
        _needsAnchor = plan.NeedsAnchor;
        _minLateness = plan.MinLatenessMs;
        var accelerator = device.Accelerator;
        int batch = options.MaxBatchEvents;
        int rows = options.MaxGatherRows;

        _planDescriptors = accelerator.Allocate1D(plan.Descriptors);
        _longInit = accelerator.Allocate1D(plan.LongInit.Length == 0 ? [0L] : plan.LongInit);
        _doubleInit = accelerator.Allocate1D(plan.DoubleInit.Length == 0 ? [0.0] : plan.DoubleInit);

        _batchKeys = accelerator.Allocate1D<ulong>(batch);
        _batchTimes = accelerator.Allocate1D<long>(batch);
        _batchNumeric = accelerator.Allocate1D<float>(Math.Max(1L, (long)batch * plan.NumericFields.Count));
        _batchKeyColumns = accelerator.Allocate1D<ulong>(Math.Max(1L, (long)batch * plan.KeyFields.Count));
        _batchBucket = accelerator.Allocate1D<int>(batch);
        _batchWon = accelerator.Allocate1D<int>(batch);
        _batchSlot = accelerator.Allocate1D<int>(batch);
        _batchTouched = accelerator.Allocate1D<int>(batch);
        _batchShared = accelerator.Allocate1D<int>(batch);
        _batchCounters = accelerator.Allocate1D<int>(3);
        _batchLate = accelerator.Allocate1D<long>(plan.Count);
        _batchPrior = accelerator.Allocate1D<long>(_hasWindows ? batch : 1);

        _readKeys = accelerator.Allocate1D<ulong>(rows);
        _readSlots = accelerator.Allocate1D<int>(rows);
        _readTimes = accelerator.Allocate1D<long>(rows);
        _readOutput = accelerator.Allocate1D<float>((long)rows * plan.Count);
        _readInexact = accelerator.Allocate1D<int>(rows);
        _readLastKeys = accelerator.Allocate1D<ulong>(Math.Max(1L, (long)rows * plan.LastKeyFields.Count));
        _victimCount = accelerator.Allocate1D<int>(1);

        _hostKeys = new ulong[Math.Max(batch, rows)];
        _hostInexact = new int[rows];
        _hostLate = new long[plan.Count];
        _hostPrior = new long[_hasWindows ? batch : 0];

        // Loaded once per table; on ILGPU the first load compiles (hundreds of ms on the simulator).
        _kernels = new KernelLoader(device);
        _insertKeys = _kernels.Load<HashView, BatchView>(FeatureKernels.InsertKeys);
        _allocateSlots = _kernels.Load<HashView, BatchView, SlotView, FreeView, PlanView>(FeatureKernels.AllocateSlots);
        _resolveSlots = _kernels.Load<int, HashView, BatchView, SlotView>(FeatureKernels.ResolveSlots);
        _advanceWindows = _kernels.Load<BatchView, SlotView, PlanView>(FeatureKernels.AdvanceWindows);
        _reanchor = _kernels.Load<BatchView, SlotView, PlanView>(FeatureKernels.Reanchor);
        _accumulate = _kernels.Load<BatchView, SlotView, PlanView>(FeatureKernels.Accumulate);
        _lookup = _kernels.Load<HashView, ReadView>(FeatureKernels.Lookup);
        _gather = _kernels.Load<HashView, ReadView, SlotView, PlanView>(FeatureKernels.Gather);
        _rebuild = _kernels.Load<SliceView, HashView, SlotView>(FeatureKernels.Rebuild);
        _clearHash = _kernels.Load<SliceView, HashView>(FeatureKernels.ClearHash);
        _selectVictims = _kernels.Load<SliceView, SlotView, VictimView>(FeatureKernels.SelectVictims);
        _evict = _kernels.Load<int, VictimView, HashView, SlotView, FreeView>(FeatureKernels.Evict);
        _pin = _kernels.Load<int, HashView, BatchView, SlotView>(FeatureKernels.Pin);
        _sampleTimes = _kernels.Load<int, int, SlotView, ArrayView<long>>(FeatureKernels.SampleTimes);

        AllocateSlots(options.InitialCapacity);
        RebuildHash();
        _device.Synchronize();
    }

    public FeaturePlan Plan { get; }

    /// <summary>Entity slots allocated now (grows up to <see cref="FeatureTableOptions.MaxCapacity"/>).</summary>
    public int Capacity { get; private set; }

    /// <summary>Entities held now.</summary>
    public int Entities => Capacity - _free;

    /// <summary>Slots free now: new entities that fit before the table must grow or evict.</summary>
    public int FreeSlots => _free;

    /// <summary>The table's limits.</summary>
    public FeatureTableOptions Options => _options;

    /// <summary>How many times the slot arrays grew.</summary>
    public int Growths { get; private set; }

    /// <summary>Marks a hash bucket whose entity was evicted: lookups probe on past it, inserts do not reuse it.</summary>
    internal const ulong Tombstone = ulong.MaxValue;

    /// <summary>
    /// Keys as the table stores them: 0 marks an empty bucket and <see cref="Tombstone"/> an evicted one,
    /// so a hash of 0 is folded into 1 and a hash of 2^64 − 1 into 2^64 − 2.
    /// </summary>
    public static ulong TableKey(ulong hash) => hash == 0 ? 1 : hash == Tombstone ? Tombstone - 1 : hash;

    /// <summary>
    /// Applies one batch of events and returns when the device has finished. Before it, the table
    /// grows, or at its maximum evicts its idlest entities, so every new entity gets a slot.
    /// </summary>
    public ApplyResult Apply<TBatch>(in TBatch batch)
        where TBatch : IBatchColumns, allows ref struct
    {
        int n = batch.Count;
        if (n > _options.MaxBatchEvents)
        {
            throw new ArgumentException($"A batch holds at most {_options.MaxBatchEvents} events; got {n}.", nameof(batch));
        }
        if (batch.Entities.Length != n || batch.Times.Length != n)
        {
            throw new ArgumentException("The entity and time columns must hold one value per event.", nameof(batch));
        }
        for (int c = 0; c < Plan.NumericFields.Count; c++)
        {
            if (batch.Numeric(c).Length != n)
            {
                throw new ArgumentException($"Column '{Plan.NumericFields[c]}' holds {batch.Numeric(c).Length} values for {n} events.", nameof(batch));
            }
        }
        for (int c = 0; c < Plan.KeyFields.Count; c++)
        {
            if (batch.Keys(c).Length != n)
            {
                throw new ArgumentException($"Key column '{Plan.KeyFields[c]}' holds {batch.Keys(c).Length} values for {n} events.", nameof(batch));
            }
        }
        if (AppliesInSlices(n))
        {
            return ApplyInSlices(batch);
        }
        long newest = 0;
        long earliest = long.MaxValue;
        bool exactLateness = false;
        foreach (long time in batch.Times)
        {
            if (time < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(batch), time, "Event times are epoch milliseconds, not negative.");
            }
            newest = Math.Max(newest, time);
            // An event newer than an earlier one by more than the least lateness could make that one late
            // after the fact: then lateness is judged per event, in stream order.
            exactLateness |= time - _minLateness > earliest;
            earliest = Math.Min(earliest, time);
        }
        if (n == 0)
        {
            System.Array.Clear(_hostLate);
            return new ApplyResult(0, 0, _hostLate, [], 0);
        }
        if (Growing)
        {
            CompleteGrowth();
        }

        // Uploaded as hashed; InsertKeys folds them into table keys on the device (no host staging copy).
        Upload(_batchKeys, batch.Entities);
        var batchView = BatchView(n);
        if (exactLateness)
        {
            StagePriors(batch.Entities, batch.Times);
            batchView.ExactLateness = 1;
        }
        int stride = batch.PinnedStride;
        if (_device.IsHost && stride >= n)
        {
            // The CPU backend reads times, values and key columns where the caller keeps them.
            batchView.Times = InPlace(batch.Times, n);
            if (Plan.NumericFields.Count > 0)
            {
                batchView.Numeric = InPlace(batch.Numeric(0), (long)(Plan.NumericFields.Count - 1) * stride + n);
            }
            if (Plan.KeyFields.Count > 0)
            {
                batchView.KeyColumns = InPlace(batch.Keys(0), (long)(Plan.KeyFields.Count - 1) * stride + n);
            }
            batchView.ColumnStride = stride;
        }
        else
        {
            Upload(_batchTimes, batch.Times);
            for (int c = 0; c < Plan.NumericFields.Count; c++)
            {
                Upload(_batchNumeric, batch.Numeric(c), (long)c * n);
            }
            for (int c = 0; c < Plan.KeyFields.Count; c++)
            {
                Upload(_batchKeyColumns, batch.Keys(c), (long)c * n);
            }
        }
        Clear(_batchCounters);
        Clear(_batchLate);
        _sequence = _sequence == int.MaxValue ? 1 : _sequence + 1;

        int threads = _kernels.Threads(n);
        PrefetchBuckets(n);
        _insertKeys(threads, threads, HashView(), batchView);
        PrefetchSlots(n);
        // Only a batch with more events than free slots can run out: then count its new keys and make room.
        var evicted = _free < n ? EnsureRoom(batchView) : [];
        var hash = HashView();
        var slots = SlotView();
        var plan = PlanView();
        _allocateSlots(threads, threads, hash, batchView, slots, FreeView(), plan);
        _resolveSlots(threads, threads, _sequence, hash, batchView, slots);
        if (_hasWindows)
        {
            _advanceWindows(threads, threads, batchView, slots, plan);
        }
        if (_needsAnchor)
        {
            _reanchor(threads, threads, batchView, slots, plan);
        }
        _accumulate(threads, threads, batchView, slots, plan);
        _device.Synchronize();

        Download(_batchCounters, _hostCounters);
        Download(_batchLate, _hostLate);
        _free = ReadFreeTop();
        int dropped = _hostCounters[1];
        return new ApplyResult(n - dropped, dropped, _hostLate, evicted, newest);
    }

    /// <summary>A buffer as the kernels index it (with its host address on the CPU backend).</summary>
    private Column<T> Col<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged => DeviceMemory.Col(_device, buffer);

    private PlanView PlanView() => new()
    {
        Descriptors = Col(_planDescriptors),
        Features = Plan.Count,
        StateFeatures = Plan.Descriptors.Length,
        LongStride = Plan.LongInit.Length,
        DoubleStride = Plan.DoubleInit.Length,
        IntStride = Plan.IntStateWidth,
        ReadsAnchor = _needsAnchor ? 1 : 0,
    };

    /// <summary>Host memory the caller keeps in place for the apply (<see cref="IBatchColumns.PinnedStride"/>), as a kernel column.</summary>
    private static unsafe Column<T> InPlace<T>(ReadOnlySpan<T> first, long length)
        where T : unmanaged =>
        new(default, (long)Unsafe.AsPointer(ref MemoryMarshal.GetReference(first)), length);

    private BatchView BatchView(int n) => new()
    {
        Keys = Col(_batchKeys),
        Times = Col(_batchTimes),
        Numeric = Col(_batchNumeric),
        KeyColumns = Col(_batchKeyColumns),
        Bucket = Col(_batchBucket),
        Won = Col(_batchWon),
        Slot = Col(_batchSlot),
        Touched = Col(_batchTouched),
        Shared = Col(_batchShared),
        Counters = Col(_batchCounters),
        Late = Col(_batchLate),
        Prior = Col(_batchPrior),
        Count = n,
        ColumnStride = n,
    };

    public void Dispose()
    {
        _kernels.Dispose();
        _growth?.Dispose();
        DisposeSlots();
        _hash?.Dispose();
        _victimSlots?.Dispose();
        _victimKeys?.Dispose();
        foreach (var buffer in new MemoryBuffer[]
        {
            _planDescriptors, _longInit, _doubleInit, _batchKeys, _batchTimes, _batchNumeric, _batchKeyColumns,
            _batchBucket, _batchWon, _batchSlot, _batchTouched, _batchShared, _batchCounters, _batchLate, _batchPrior,
            _readKeys, _readSlots, _readTimes, _readOutput, _readInexact, _readLastKeys, _victimCount,
        })
        {
            buffer.Dispose();
        }
    }
}

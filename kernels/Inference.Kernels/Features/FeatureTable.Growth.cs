using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Features;

// Growth a slice at a time. New slot arrays and a new hash table are built next to the live ones:
// first the new hash is cleared, then each slice copies a range of slot rows (zeroing the new rows
// beyond the old capacity) and inserts their keys into the new hash; the last slice switches over.
// Reads go on against the live arrays meanwhile; nothing may apply a batch or evict until the switch
// (the owner holds them back; Apply and eviction finish a growth in progress first). Touching fresh
// memory costs page faults, which made a one-step doubling from 512k to 1M slots a ~100 ms pause.
public sealed partial class FeatureTable
{
    private MemoryBuffer1D<SlotHeader, Stride1D.Dense>? _nextHeads;
    private MemoryBuffer1D<long, Stride1D.Dense>? _nextLongs;
    private MemoryBuffer1D<double, Stride1D.Dense>? _nextDoubles;
    private MemoryBuffer1D<int, Stride1D.Dense>? _nextRegisters;
    private MemoryBuffer1D<HashEntry, Stride1D.Dense>? _nextHash;
    private MemoryBuffer1D<int, Stride1D.Dense>? _nextFree;
    private int _nextMask;
    private int _nextCapacity;
    private bool _clearingNextHash;
    private long _growCursor;

    /// <summary>True while a growth started by <see cref="BeginGrowth"/> has not switched over yet.</summary>
    public bool Growing => _nextHeads is not null;

    /// <summary>
    /// Starts growing to at least <paramref name="atLeast"/> slots (doubling, up to the maximum) without
    /// touching the live arrays. Returns false at the maximum.
    /// </summary>
    public bool BeginGrowth(int atLeast = 0)
    {
        if (Growing)
        {
            return true;
        }
        if (Capacity >= _options.MaxCapacity)
        {
            return false;
        }
        var accelerator = _device.Accelerator;
        _nextCapacity = (int)Math.Min(_options.MaxCapacity, Math.Max(2L * Capacity, atLeast));
        _nextHeads = accelerator.Allocate1D<SlotHeader>(_nextCapacity);
        _nextLongs = accelerator.Allocate1D<long>(Math.Max(1L, (long)_nextCapacity * Plan.LongInit.Length));
        _nextDoubles = accelerator.Allocate1D<double>(Math.Max(1L, (long)_nextCapacity * Plan.DoubleInit.Length));
        _nextRegisters = accelerator.Allocate1D<int>(Math.Max(1L, (long)_nextCapacity * Plan.IntStateWidth));
        _nextHash = AllocateHash(_nextCapacity, out _nextMask);
        // The stack can hold every slot: eviction may free all of them.
        _nextFree = accelerator.Allocate1D<int>(_nextCapacity);
        _clearingNextHash = true;
        _growCursor = 0;
        return true;
    }

    /// <summary>
    /// Does one bounded step of the growth in progress (about <paramref name="slots"/> slot rows, or
    /// four times as many hash buckets). Returns true once the table has switched to the grown arrays.
    /// </summary>
    public bool GrowthSlice(int slots)
    {
        if (!Growing)
        {
            return true;
        }
        var nextHash = new HashView { Entries = Col(_nextHash!), Mask = _nextMask };
        if (_clearingNextHash)
        {
            long buckets = _nextMask + 1L;
            int count = (int)Math.Min(4L * slots, buckets - _growCursor);
            int threads = _kernels.Threads(count);
            _clearHash(threads, threads, new SliceView { Start = (int)_growCursor, Count = count }, nextHash);
            _growCursor += count;
            if (_growCursor >= buckets)
            {
                _clearingNextHash = false;
                _growCursor = 0;
            }
            _device.Synchronize();
            return false;
        }
        int start = (int)_growCursor;
        int end = (int)Math.Min(_nextCapacity, _growCursor + slots);
        int copied = Math.Max(0, Math.Min(end, Capacity) - start);
        // Rows the live table has are copied; rows beyond it start empty.
        MoveRows(_heads, _nextHeads!, 1, start, copied, end);
        MoveRows(_longs, _nextLongs!, Plan.LongInit.Length, start, copied, end);
        MoveRows(_doubles, _nextDoubles!, Plan.DoubleInit.Length, start, copied, end);
        MoveRows(_registers, _nextRegisters!, Plan.IntStateWidth, start, copied, end);
        if (end > Math.Max(start, Capacity))
        {
            // The new slots go on the bottom of the new free stack, the lowest nearest its top.
            int first = Math.Max(start, Capacity);
            var fresh = new int[end - first];
            for (int s = first; s < end; s++)
            {
                fresh[_nextCapacity - 1 - s - (_nextCapacity - end)] = s;
            }
            Upload(_nextFree!, fresh, _nextCapacity - end);
        }
        if (copied > 0)
        {
            var next = new SlotView { Heads = Col(_nextHeads!), Longs = Col(_nextLongs!), Doubles = Col(_nextDoubles!), Registers = Col(_nextRegisters!) };
            int threads = _kernels.Threads(copied);
            _rebuild(threads, threads, new SliceView { Start = start, Count = copied }, nextHash, next);
        }
        _device.Synchronize();
        _growCursor = end;
        if (end < _nextCapacity)
        {
            return false;
        }
        SwitchToGrown();
        return true;
    }

    /// <summary>Finishes a growth in progress at once (before an apply or an eviction, which must see one table).</summary>
    private void CompleteGrowth()
    {
        while (!GrowthSlice(int.MaxValue / 8))
        {
        }
    }

    private void SwitchToGrown()
    {
        // The old stack's entries (fewer than a batch: growth starts when free slots run short) go on top.
        int fresh = _nextCapacity - Capacity;
        int top = ReadFreeTop();
        var old = new int[top];
        Download(_freeList, old);
        Upload(_nextFree!, old, fresh);
        DisposeSlots();
        _hash?.Dispose();
        _heads = _nextHeads!;
        _longs = _nextLongs!;
        _doubles = _nextDoubles!;
        _registers = _nextRegisters!;
        _hash = _nextHash;
        _hashMask = _nextMask;
        _freeList = _nextFree!;
        _nextHeads = null;
        _nextLongs = null;
        _nextDoubles = null;
        _nextRegisters = null;
        _nextHash = null;
        _nextFree = null;
        _tombstones = 0;
        _rebuilds++;
        Growths++;
        _freeTop = _device.Accelerator.Allocate1D<int>(1);
        Capacity = _nextCapacity;
        int height = fresh + top;
        Upload(_freeTop, new ReadOnlySpan<int>(in height));
        _free = height;
    }

    /// <summary>Copies rows [start, start + copied) of a per-slot array and zeroes the new rows up to <paramref name="end"/>.</summary>
    private unsafe void MoveRows<T>(MemoryBuffer1D<T, Stride1D.Dense> live, MemoryBuffer1D<T, Stride1D.Dense> next, int width, int start, int copied, int end)
        where T : unmanaged
    {
        if (width == 0)
        {
            return;
        }
        long from = (long)start * width;
        long copy = (long)copied * width;
        long zero = ((long)end - start) * width - copy;
        if (_device.IsHost)
        {
            new ReadOnlySpan<T>((T*)live.NativePtr + from, (int)copy).CopyTo(new Span<T>((T*)next.NativePtr + from, (int)copy));
            new Span<T>((T*)next.NativePtr + from + copy, (int)zero).Clear();
            return;
        }
        if (copy > 0)
        {
            ArrayView<T> source = live.View;
            ArrayView<T> target = next.View;
            var destination = target.SubView(from, copy);
            source.SubView(from, copy).CopyTo(in destination);
        }
        if (zero > 0)
        {
            ((ArrayView<T>)next.View).SubView(from + copy, zero).MemSetToZero();
        }
    }

    private void DisposeGrowth()
    {
        foreach (var buffer in new MemoryBuffer?[] { _nextHeads, _nextLongs, _nextDoubles, _nextRegisters, _nextHash, _nextFree })
        {
            buffer?.Dispose();
        }
    }
}

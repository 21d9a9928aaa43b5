using System.Numerics;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Features;

// Slot storage, the key → slot hash table, growth and eviction. Growth and eviction are rare and
// run on the host between batches (under the device gate); the per-batch path never leaves the device.
public sealed partial class FeatureTable
{
    private MemoryBuffer1D<long, Stride1D.Dense> _count = null!;
    private MemoryBuffer1D<long, Stride1D.Dense> _maxTime = null!;
    private MemoryBuffer1D<long, Stride1D.Dense> _anchor = null!;
    private MemoryBuffer1D<ulong, Stride1D.Dense> _slotKey = null!;
    private MemoryBuffer1D<int, Stride1D.Dense> _touch = null!;
    private MemoryBuffer1D<long, Stride1D.Dense> _longs = null!;
    private MemoryBuffer1D<double, Stride1D.Dense> _doubles = null!;
    private MemoryBuffer1D<int, Stride1D.Dense> _registers = null!;
    private MemoryBuffer1D<int, Stride1D.Dense> _freeList = null!;
    private MemoryBuffer1D<int, Stride1D.Dense> _freeTop = null!;
    private MemoryBuffer1D<ulong, Stride1D.Dense>? _hashKeys;
    private MemoryBuffer1D<int, Stride1D.Dense>? _hashSlotOf;
    private int _hashMask;

    private SlotView SlotView() => new()
    {
        Count = _count.View,
        MaxTime = _maxTime.View,
        Anchor = _anchor.View,
        Key = _slotKey.View,
        Touch = _touch.View,
        Longs = _longs.View,
        Doubles = _doubles.View,
        Registers = _registers.View,
    };

    private HashView HashView() => new() { Keys = _hashKeys!.View, SlotOf = _hashSlotOf!.View, Mask = _hashMask };

    private FreeView FreeView() => new() { List = _freeList.View, Top = _freeTop.View, LongInit = _longInit.View, DoubleInit = _doubleInit.View };

    /// <summary>(Re)allocates the slot arrays at <paramref name="capacity"/>, keeping the first <paramref name="previous"/> slots.</summary>
    private void AllocateSlots(int capacity, int previous)
    {
        var accelerator = _device.Accelerator;
        var old = previous > 0 ? SlotView() : default;
        int[] free;
        if (previous > 0)
        {
            int top = ReadFreeTop();
            free = new int[top + capacity - previous];
            Download(_freeList, free.AsSpan(0, top));
            for (int s = previous; s < capacity; s++)
            {
                free[top + s - previous] = s;
            }
        }
        else
        {
            // Hand out low slots first: the stack pops from its end.
            free = new int[capacity];
            for (int s = 0; s < capacity; s++)
            {
                free[s] = capacity - 1 - s;
            }
        }

        var count = accelerator.Allocate1D<long>(capacity);
        var maxTime = accelerator.Allocate1D<long>(capacity);
        var anchor = accelerator.Allocate1D<long>(capacity);
        var key = accelerator.Allocate1D<ulong>(capacity);
        var touch = accelerator.Allocate1D<int>(capacity);
        var longs = accelerator.Allocate1D<long>(Math.Max(1L, (long)capacity * Plan.LongInit.Length));
        var doubles = accelerator.Allocate1D<double>(Math.Max(1L, (long)capacity * Plan.DoubleInit.Length));
        var registers = accelerator.Allocate1D<int>(Math.Max(1L, (long)capacity * Plan.IntStateWidth));
        count.MemSetToZero();
        maxTime.MemSetToZero();
        anchor.MemSetToZero();
        key.MemSetToZero();
        touch.MemSetToZero();
        longs.MemSetToZero();
        doubles.MemSetToZero();
        registers.MemSetToZero();
        if (previous > 0)
        {
            CopyPrefix(old.Count, count.View, previous);
            CopyPrefix(old.MaxTime, maxTime.View, previous);
            CopyPrefix(old.Anchor, anchor.View, previous);
            CopyPrefix(old.Key, key.View, previous);
            CopyPrefix(old.Touch, touch.View, previous);
            CopyPrefix(old.Longs, longs.View, (long)previous * Plan.LongInit.Length);
            CopyPrefix(old.Doubles, doubles.View, (long)previous * Plan.DoubleInit.Length);
            CopyPrefix(old.Registers, registers.View, (long)previous * Plan.IntStateWidth);
            DisposeSlots();
        }
        _count = count;
        _maxTime = maxTime;
        _anchor = anchor;
        _slotKey = key;
        _touch = touch;
        _longs = longs;
        _doubles = doubles;
        _registers = registers;
        // The stack can hold every slot: eviction may free all of them.
        _freeList = accelerator.Allocate1D<int>(capacity);
        _freeTop = accelerator.Allocate1D<int>(1);
        Capacity = capacity;
        SetFreeSlots(free);
    }

    /// <summary>The free-slot stack's height on the device (it goes below 0 when a batch found no slot).</summary>
    private int ReadFreeTop()
    {
        int top = 0;
        Download(_freeTop, new Span<int>(ref top));
        return Math.Max(0, top);
    }

    /// <summary>Replaces the free-slot stack; the last entry is handed out first.</summary>
    private void SetFreeSlots(ReadOnlySpan<int> free)
    {
        Upload(_freeList, free);
        int top = free.Length;
        Upload(_freeTop, new ReadOnlySpan<int>(in top));
        _free = top;
    }

    private static void CopyPrefix<T>(ArrayView<T> source, ArrayView<T> target, long length)
        where T : unmanaged
    {
        if (length > 0)
        {
            var destination = target.SubView(0, length);
            source.SubView(0, length).CopyTo(in destination);
        }
    }

    private void DisposeSlots()
    {
        foreach (var buffer in new MemoryBuffer?[] { _count, _maxTime, _anchor, _slotKey, _touch, _longs, _doubles, _registers, _freeList, _freeTop })
        {
            buffer?.Dispose();
        }
    }

    /// <summary>A fresh hash table sized for the capacity plus a full batch at most half full, filled from the live slots.</summary>
    private void RebuildHash()
    {
        long size = (long)BitOperations.RoundUpToPowerOf2((ulong)(2L * (Capacity + (long)_options.MaxBatchEvents)));
        if (size > 1 << 30)
        {
            throw new InvalidOperationException($"A hash table of {size} buckets is beyond this table's limit.");
        }
        _hashKeys?.Dispose();
        _hashSlotOf?.Dispose();
        _hashKeys = _device.Accelerator.Allocate1D<ulong>(size);
        _hashSlotOf = _device.Accelerator.Allocate1D<int>(size);
        _hashKeys.MemSetToZero();
        _hashSlotOf.MemSetToZero();
        _hashMask = (int)(size - 1);
        int threads = Math.Min(Capacity, _device.GridThreads);
        _rebuild(threads, threads, Capacity, HashView(), SlotView());
    }

    /// <summary>Makes sure every new entity of the staged batch will find a free slot.</summary>
    private ulong[] EnsureRoom(int events)
    {
        if (_free >= events)
        {
            return [];
        }
        // Count the batch's entities the table does not hold (an upper bound: repeats count twice).
        var read = new ReadView { Keys = _batchKeys.View, Slots = _batchSlot.View, Rows = events };
        int threads = Math.Min(events, _device.GridThreads);
        _lookup(threads, threads, HashView(), read);
        _device.Accelerator.Synchronize();
        var slots = new int[events];
        Download(_batchSlot, slots);
        int missing = 0;
        foreach (int slot in slots)
        {
            if (slot < 0)
            {
                missing++;
            }
        }
        if (_free >= missing)
        {
            return [];
        }
        if (Capacity < _options.MaxCapacity)
        {
            int grown = (int)Math.Min(_options.MaxCapacity, Math.Max(2L * Capacity, (long)Capacity - _free + missing));
            AllocateSlots(grown, Capacity);
            RebuildHash();
            Growths++;
            if (_free >= missing)
            {
                return [];
            }
        }
        // Never evict an entity of this very batch: it would need a slot again at once.
        var batchKeys = new HashSet<ulong>(events);
        foreach (ulong key in _hostKeys.AsSpan(0, events))
        {
            batchKeys.Add(key);
        }
        int evict = Math.Max(missing - _free, (int)(Capacity * _options.EvictionFraction));
        return EvictWhere(evict, olderThan: long.MaxValue, batchKeys);
    }

    /// <summary>Evicts every entity whose newest event is older than <paramref name="cutoffTimeMs"/> (a TTL by event time).</summary>
    public ulong[] EvictIdle(long cutoffTimeMs)
    {
        lock (_device.Gate)
        {
            return EvictWhere(int.MaxValue, cutoffTimeMs, null);
        }
    }

    /// <summary>Evicts up to <paramref name="limit"/> entities, idlest (oldest newest event) first, among those older than the cutoff.</summary>
    private ulong[] EvictWhere(int limit, long olderThan, HashSet<ulong>? keep)
    {
        var keys = new ulong[Capacity];
        var newest = new long[Capacity];
        Download(_slotKey, keys);
        Download(_maxTime, newest);
        var candidates = new List<int>();
        for (int s = 0; s < Capacity; s++)
        {
            if (keys[s] != 0 && newest[s] < olderThan && keep?.Contains(keys[s]) != true)
            {
                candidates.Add(s);
            }
        }
        if (candidates.Count == 0)
        {
            return [];
        }
        candidates.Sort((a, b) => newest[a] != newest[b] ? newest[a].CompareTo(newest[b]) : a.CompareTo(b));
        int count = Math.Min(limit, candidates.Count);
        var victims = candidates.GetRange(0, count).ToArray();
        var evicted = new ulong[count];
        for (int i = 0; i < count; i++)
        {
            evicted[i] = keys[victims[i]];
            keys[victims[i]] = 0;
        }

        using var victimSlots = _device.Accelerator.Allocate1D(victims);
        int threads = Math.Min(count, _device.GridThreads);
        _evict(threads, threads, count, victimSlots.View, SlotView());

        var free = new List<int>(Capacity);
        for (int s = Capacity - 1; s >= 0; s--)
        {
            if (keys[s] == 0)
            {
                free.Add(s);
            }
        }
        SetFreeSlots(CollectionsMarshal.AsSpan(free));
        RebuildHash();
        _device.Accelerator.Synchronize();
        return evicted;
    }
}

using System.Numerics;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Features;

// Slot storage, the key → slot hash table and eviction (growth: FeatureTable.Growth.cs). Eviction
// runs between batches, on the device: victims are chosen by a scan kernel (a slice of slots at a
// time when the caller wants bounded pauses), their hash entries become tombstones, their slots go
// back on the free stack.
public sealed partial class FeatureTable
{
    private MemoryBuffer1D<SlotHeader, Stride1D.Dense> _heads = null!;
    private MemoryBuffer1D<long, Stride1D.Dense> _longs = null!;
    private MemoryBuffer1D<double, Stride1D.Dense> _doubles = null!;
    private MemoryBuffer1D<int, Stride1D.Dense> _registers = null!;
    private MemoryBuffer1D<int, Stride1D.Dense> _freeList = null!;
    private MemoryBuffer1D<int, Stride1D.Dense> _freeTop = null!;
    private MemoryBuffer1D<HashEntry, Stride1D.Dense>? _hash;
    private int _hashMask;
    private int _tombstones;
    private int _rebuilds;
    private int _pinMark;
    private long[] _samples = [];
    private MemoryBuffer1D<int, Stride1D.Dense>? _victimSlots;
    private MemoryBuffer1D<ulong, Stride1D.Dense>? _victimKeys;

    private SlotView SlotView() => new()
    {
        Heads = Col(_heads),
        Longs = Col(_longs),
        Doubles = Col(_doubles),
        Registers = Col(_registers),
    };

    private HashView HashView() => new() { Entries = Col(_hash!), Mask = _hashMask };

    private FreeView FreeView() => new() { List = Col(_freeList), Top = Col(_freeTop), LongInit = Col(_longInit), DoubleInit = Col(_doubleInit) };

    /// <summary>Allocates the first slot arrays, every slot free (later capacity comes from growth).</summary>
    private void AllocateSlots(int capacity)
    {
        _heads = AllocateRows<SlotHeader>(capacity, 1);
        _longs = AllocateRows<long>(capacity, Plan.LongInit.Length);
        _doubles = AllocateRows<double>(capacity, Plan.DoubleInit.Length);
        _registers = AllocateRows<int>(capacity, Plan.IntStateWidth);
        Clear(_heads);
        Clear(_longs);
        Clear(_doubles);
        Clear(_registers);
        // The stack can hold every slot: eviction may free all of them. Low slots are handed out
        // first: the stack pops from its end.
        _freeList = _device.Accelerator.Allocate1D<int>(capacity);
        _freeTop = _device.Accelerator.Allocate1D<int>(1);
        Capacity = capacity;
        FreeEverySlot();
    }

    /// <summary>Every slot on the free stack, the lowest handed out first (the stack pops from its end).</summary>
    private void FreeEverySlot()
    {
        var free = new int[Capacity];
        for (int s = 0; s < Capacity; s++)
        {
            free[s] = Capacity - 1 - s;
        }
        SetFreeSlots(free);
    }

    /// <summary>
    /// Forgets every entity: every slot free and the hash table empty, with the capacity, the device buffers
    /// and the loaded kernels kept, so a scratch table serves again without being built anew. A slot's state
    /// is set when it is handed out, so only the headers (what scans read) are cleared.
    /// </summary>
    public void Clear()
    {
        _growth?.Dispose();
        _growth = null;
        Clear(_heads);
        FreeEverySlot();
        int buckets = _kernels.Threads(_hashMask + 1L);
        _clearHash(buckets, buckets, new SliceView { Start = 0, Count = _hashMask + 1 }, HashView());
        _tombstones = 0;
        _device.Synchronize();
    }

    /// <summary>A per-slot array: <paramref name="width"/> values per slot (at least one element, so a view exists).</summary>
    private MemoryBuffer1D<T, Stride1D.Dense> AllocateRows<T>(int capacity, int width)
        where T : unmanaged => _device.Accelerator.Allocate1D<T>(Math.Max(1L, (long)capacity * width));

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

    private void DisposeSlots()
    {
        foreach (var buffer in new MemoryBuffer?[] { _heads, _longs, _doubles, _registers, _freeList, _freeTop })
        {
            buffer?.Dispose();
        }
    }

    /// <summary>A fresh hash table sized for the capacity plus a full batch at most half full, filled from the live slots.</summary>
    private void RebuildHash()
    {
        _hash?.Dispose();
        _hash = AllocateHash(Capacity, out _hashMask);
        var hash = HashView();
        int buckets = _kernels.Threads(_hashMask + 1L);
        _clearHash(buckets, buckets, new SliceView { Start = 0, Count = _hashMask + 1 }, hash);
        _tombstones = 0;
        _rebuilds++;
        int threads = _kernels.Threads(Capacity);
        _rebuild(threads, threads, new SliceView { Start = 0, Count = Capacity }, hash, SlotView());
    }

    private MemoryBuffer1D<HashEntry, Stride1D.Dense> AllocateHash(int capacity, out int mask)
    {
        long size = (long)BitOperations.RoundUpToPowerOf2((ulong)(2L * (capacity + (long)_options.MaxBatchEvents)));
        if (size > 1 << 30)
        {
            throw new InvalidOperationException($"A hash table of {size} buckets is beyond this table's limit.");
        }
        mask = (int)(size - 1);
        return _device.Accelerator.Allocate1D<HashEntry>(size);
    }

    /// <summary>
    /// After the batch's keys are inserted: makes sure every key new to the table will find a free slot,
    /// growing the table or, at its maximum, evicting the idlest entities that are not in the batch.
    /// A hash rebuild (growth, or clearing tombstones) drops the new keys, which have no slot yet, so the
    /// keys are inserted again after one.
    /// </summary>
    private ulong[] EnsureRoom(BatchView batch)
    {
        int threads = _kernels.Threads(batch.Count);
        int fresh = NewKeys();
        if (fresh <= _free)
        {
            return [];
        }
        if (Grow((int)Math.Min(int.MaxValue, (long)Capacity - _free + fresh)))
        {
            fresh = InsertAgain(batch, threads);
            if (fresh <= _free)
            {
                return [];
            }
        }
        // Never evict an entity of this very batch: it would need a slot again at once.
        int pin = NextPin();
        _pin(threads, threads, pin, HashView(), batch, SlotView());
        int rebuilds = _rebuilds;
        int target = Math.Max(fresh - _free, (int)(Capacity * _options.EvictionFraction));
        var evicted = new List<ulong>(target);
        // The cutoff is estimated from a sample; when it frees too few, widen it until enough are gone.
        for (double margin = 1.25; _free < fresh; margin *= 4)
        {
            long cutoff = margin > 1_000 ? long.MaxValue : IdleCutoff((int)Math.Min(int.MaxValue, (long)(target * margin)));
            evicted.AddRange(EvictPinned(cutoff, 0, Capacity, target - evicted.Count, pin));
            if (cutoff == long.MaxValue)
            {
                break;
            }
        }
        if (_rebuilds != rebuilds)
        {
            InsertAgain(batch, threads);
        }
        return [.. evicted];
    }

    /// <summary>Keys of the staged batch that were new to the table (inserted without a slot).</summary>
    private int NewKeys()
    {
        _device.Synchronize();
        Download(_batchCounters, _hostCounters);
        return _hostCounters[2];
    }

    private int InsertAgain(BatchView batch, int threads)
    {
        Clear(_batchCounters);
        _insertKeys(threads, threads, HashView(), batch);
        return NewKeys();
    }

    /// <summary>Evicts every entity whose newest event is older than <paramref name="cutoffTimeMs"/> (a TTL by event time).</summary>
    public ulong[] EvictIdle(long cutoffTimeMs) => EvictOlderThan(cutoffTimeMs, 0, Capacity, int.MaxValue);

    /// <summary>
    /// Evicts up to <paramref name="limit"/> entities of slots [<paramref name="startSlot"/>, + <paramref name="slotCount"/>)
    /// whose newest event is older than <paramref name="cutoffTimeMs"/>, and returns their keys. A caller that
    /// wants short pauses walks the table a slice at a time.
    /// </summary>
    public ulong[] EvictOlderThan(long cutoffTimeMs, int startSlot, int slotCount, int limit) =>
        EvictPinned(cutoffTimeMs, startSlot, slotCount, limit, pin: 0);

    private ulong[] EvictPinned(long cutoffTimeMs, int startSlot, int slotCount, int limit, int pin)
    {
        if (Growing)
        {
            CompleteGrowth();
        }
        startSlot = Math.Clamp(startSlot, 0, Capacity);
        slotCount = Math.Clamp(slotCount, 0, Capacity - startSlot);
        limit = Math.Min(limit, slotCount);
        if (limit <= 0)
        {
            return [];
        }
        if (_victimSlots is null || _victimSlots.Length < limit)
        {
            // Kept between calls (a TTL scan evicts slice after slice), grown to the largest limit asked.
            _victimSlots?.Dispose();
            _victimKeys?.Dispose();
            _victimSlots = _device.Accelerator.Allocate1D<int>(limit);
            _victimKeys = _device.Accelerator.Allocate1D<ulong>(limit);
        }
        Clear(_victimCount);
        var victims = new VictimView { Slots = Col(_victimSlots), Keys = Col(_victimKeys!), Count = Col(_victimCount), Limit = limit };
        var slice = new SliceView { Start = startSlot, Count = slotCount, Cutoff = cutoffTimeMs, Pin = pin };
        int threads = _kernels.Threads(slotCount);
        _selectVictims(threads, threads, slice, SlotView(), victims);
        _device.Synchronize();
        int found = 0;
        Download(_victimCount, new Span<int>(ref found));
        int count = Math.Min(found, limit);
        if (count == 0)
        {
            return [];
        }
        // A batch that found no slot leaves the stack's top below zero: start the pushes from the real height.
        Upload(_freeTop, new ReadOnlySpan<int>(in _free));
        threads = _kernels.Threads(count);
        _evict(threads, threads, count, victims, HashView(), SlotView(), FreeView());
        _device.Synchronize();
        var evicted = new ulong[count];
        Download(_victimKeys!, evicted);
        _free += count;
        _tombstones += count;
        if (_tombstones > (_hashMask + 1) / 4)
        {
            // Probes walk past tombstones: clear them before they lengthen every lookup.
            RebuildHash();
            _device.Synchronize();
        }
        return evicted;
    }

    /// <summary>
    /// A newest-event time below which about <paramref name="count"/> of the held entities fall,
    /// estimated from an even sample of slots (so eviction by it takes the idlest without sorting the table).
    /// </summary>
    public long IdleCutoff(int count)
    {
        int live = Entities;
        if (live == 0 || count <= 0)
        {
            return long.MinValue;
        }
        if (count >= live)
        {
            return long.MaxValue;
        }
        int samples = Math.Min(Capacity, 4_096);
        int step = Capacity / samples;
        if (_samples.Length < samples)
        {
            _samples = new long[samples];
        }
        using var output = _device.Accelerator.Allocate1D<long>(samples);
        int threads = _kernels.Threads(samples);
        _sampleTimes(threads, threads, samples, step, SlotView(), output.View);
        _device.Synchronize();
        var times = _samples.AsSpan(0, samples);
        Download(output, times);
        times.Sort();
        int held = 0;
        while (held < samples && times[held] != long.MaxValue)
        {
            held++;
        }
        if (held == 0)
        {
            return long.MaxValue;
        }
        int at = (int)Math.Min(held - 1, (long)count * held / live);
        // Older than the sample at the quantile; ties at the cutoff stay.
        return times[at] == long.MaxValue ? long.MaxValue : times[at] + 1;
    }

    /// <summary>A fresh pin mark: negative, so it never equals a batch sequence in the high bits of a header's Tag.</summary>
    private int NextPin()
    {
        _pinMark = _pinMark <= int.MinValue + 1 ? -1 : _pinMark - 1;
        return _pinMark;
    }
}

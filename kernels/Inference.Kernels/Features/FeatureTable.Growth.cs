using Inference.Kernels.Accelerators;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Features;

// Growth, a slice at a time. New slot arrays and a new hash table are built next to the live ones:
// first the new hash is cleared, then each slice copies a range of slot rows (zeroing the new rows
// beyond the old capacity) and inserts their keys into the new hash; the last slice switches over.
// Reads go on against the live arrays meanwhile; nothing may apply a batch or evict until the switch
// (the owner holds them back; Apply and eviction finish a growth in progress first). Touching fresh
// memory costs page faults, which made a one-step doubling from 512k to 1M slots a ~100 ms pause.
// Growing in one step (Grow) is the same work without pauses between the slices.
public sealed partial class FeatureTable
{
    private Growth? _growth;

    /// <summary>True while a growth started by <see cref="BeginGrowth"/> has not switched over yet.</summary>
    public bool Growing => _growth is not null;

    /// <summary>
    /// Grows the table at once to at least <paramref name="atLeast"/> slots (doubling, up to the maximum
    /// capacity). Returns false at the maximum. It touches every slot: the engine grows a slice at a
    /// time (<see cref="BeginGrowth"/>), between batches, rather than inside an apply.
    /// </summary>
    public bool Grow(int atLeast = 0)
    {
        if (!BeginGrowth(atLeast))
        {
            return false;
        }
        CompleteGrowth();
        return true;
    }

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
        int capacity = (int)Math.Min(_options.MaxCapacity, Math.Max(2L * Capacity, atLeast));
        _growth = new Growth(this, capacity);
        return true;
    }

    /// <summary>
    /// Does one bounded step of the growth in progress (about <paramref name="slots"/> slot rows, or
    /// four times as many hash buckets). Returns true once the table has switched to the grown arrays.
    /// </summary>
    public bool GrowthSlice(int slots)
    {
        var next = _growth;
        if (next is null)
        {
            return true;
        }
        var nextHash = new HashView { Entries = Col(next.Hash), Mask = next.Mask };
        if (next.ClearingHash)
        {
            long buckets = next.Mask + 1L;
            int count = (int)Math.Min(4L * slots, buckets - next.Cursor);
            int threads = _kernels.Threads(count);
            _clearHash(threads, threads, new SliceView { Start = (int)next.Cursor, Count = count }, nextHash);
            next.Cursor += count;
            if (next.Cursor >= buckets)
            {
                next.ClearingHash = false;
                next.Cursor = 0;
            }
            _device.Synchronize();
            return false;
        }
        int start = (int)next.Cursor;
        int end = (int)Math.Min(next.Capacity, next.Cursor + slots);
        int copied = Math.Max(0, Math.Min(end, Capacity) - start);
        // Rows the live table has are copied; rows beyond it start empty.
        MoveRows(_heads, next.Heads, 1, start, copied, end);
        MoveRows(_longs, next.Longs, Plan.LongInit.Length, start, copied, end);
        MoveRows(_doubles, next.Doubles, Plan.DoubleInit.Length, start, copied, end);
        MoveRows(_registers, next.Registers, Plan.IntStateWidth, start, copied, end);
        if (end > Math.Max(start, Capacity))
        {
            // The new slots go on the bottom of the new free stack, the lowest nearest its top.
            int first = Math.Max(start, Capacity);
            var fresh = new int[end - first];
            for (int s = first; s < end; s++)
            {
                fresh[end - 1 - s] = s;
            }
            Upload(next.Free, fresh, next.Capacity - end);
        }
        if (copied > 0)
        {
            var rows = new SlotView { Heads = Col(next.Heads), Longs = Col(next.Longs), Doubles = Col(next.Doubles), Registers = Col(next.Registers) };
            int threads = _kernels.Threads(copied);
            _rebuild(threads, threads, new SliceView { Start = start, Count = copied }, nextHash, rows);
        }
        _device.Synchronize();
        next.Cursor = end;
        if (end < next.Capacity)
        {
            return false;
        }
        SwitchTo(next);
        return true;
    }

    /// <summary>Finishes a growth in progress at once (before an apply or an eviction, which must see one table).</summary>
    private void CompleteGrowth()
    {
        while (!GrowthSlice(int.MaxValue / 8))
        {
        }
    }

    private void SwitchTo(Growth next)
    {
        // The old stack's entries (few: growth starts when free slots run short) go on top of the new slots.
        int fresh = next.Capacity - Capacity;
        int top = ReadFreeTop();
        var old = new int[top];
        Download(_freeList, old);
        Upload(next.Free, old, fresh);
        DisposeSlots();
        _hash?.Dispose();
        _heads = next.Heads;
        _longs = next.Longs;
        _doubles = next.Doubles;
        _registers = next.Registers;
        _hash = next.Hash;
        _hashMask = next.Mask;
        _freeList = next.Free;
        _freeTop = _device.Accelerator.Allocate1D<int>(1);
        _growth = null;
        _tombstones = 0;
        _rebuilds++;
        Growths++;
        Capacity = next.Capacity;
        int height = fresh + top;
        Upload(_freeTop, new ReadOnlySpan<int>(in height));
        _free = height;
    }

    /// <summary>Copies rows [start, start + copied) of a per-slot array and zeroes the new rows up to <paramref name="end"/>.</summary>
    private void MoveRows<T>(MemoryBuffer1D<T, Stride1D.Dense> live, MemoryBuffer1D<T, Stride1D.Dense> next, int width, int start, int copied, int end)
        where T : unmanaged
    {
        if (width == 0)
        {
            return;
        }
        long from = (long)start * width;
        long copy = (long)copied * width;
        DeviceMemory.Copy(_device, live, next, from, copy);
        DeviceMemory.Clear(_device, next, from + copy, ((long)end - start) * width - copy);
    }

    /// <summary>The arrays and hash table a growth builds beside the live ones, and how far it has come.</summary>
    private sealed class Growth : IDisposable
    {
        public Growth(FeatureTable table, int capacity)
        {
            Capacity = capacity;
            Heads = table.AllocateRows<SlotHeader>(capacity, 1);
            Longs = table.AllocateRows<long>(capacity, table.Plan.LongInit.Length);
            Doubles = table.AllocateRows<double>(capacity, table.Plan.DoubleInit.Length);
            Registers = table.AllocateRows<int>(capacity, table.Plan.IntStateWidth);
            Hash = table.AllocateHash(capacity, out int mask);
            Mask = mask;
            // The stack can hold every slot: eviction may free all of them.
            Free = table._device.Accelerator.Allocate1D<int>(capacity);
        }

        public int Capacity { get; }

        public MemoryBuffer1D<SlotHeader, Stride1D.Dense> Heads { get; }

        public MemoryBuffer1D<long, Stride1D.Dense> Longs { get; }

        public MemoryBuffer1D<double, Stride1D.Dense> Doubles { get; }

        public MemoryBuffer1D<int, Stride1D.Dense> Registers { get; }

        public MemoryBuffer1D<HashEntry, Stride1D.Dense> Hash { get; }

        public int Mask { get; }

        public MemoryBuffer1D<int, Stride1D.Dense> Free { get; }

        /// <summary>First the new hash table is cleared, then the rows are moved.</summary>
        public bool ClearingHash { get; set; } = true;

        public long Cursor { get; set; }

        public void Dispose()
        {
            foreach (var buffer in new MemoryBuffer[] { Heads, Longs, Doubles, Registers, Hash, Free })
            {
                buffer.Dispose();
            }
        }
    }
}

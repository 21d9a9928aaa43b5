using System.Numerics;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Embeddings;

// Room for new ids: the rows grow by doubling up to the maximum, then the idlest ids that are not in the
// call are forgotten; the hash table is rebuilt larger (or free of tombstones) when it fills; ids counted
// on their way to a row are bounded too. And the TTL.
public sealed partial class EmbeddingTable
{
    /// <summary>Forgets every id not learned from since <paramref name="cutoffMs"/> and frees its row; returns how many.</summary>
    public int ForgetOlderThan(long cutoffMs)
    {
        Clear(_counters);
        var forget = new ForgetView { Buckets = Col(_buckets), Counters = Col(_counters), Count = 0, CutoffMs = cutoffMs };
        int threads = _kernels.Threads(_hashMask + 1L);
        _forgetOlderThan(threads, threads, HashView(), forget, RowsView());
        return AfterForget();
    }

    /// <summary>Makes sure each of <paramref name="n"/> ids (staged) can get a row, and the hash table can take them.</summary>
    private void MakeRoom(int n)
    {
        if (_free < n)
        {
            if (Capacity < _options.MaxCapacity)
            {
                long wanted = Math.Max(2L * Capacity, (long)Capacity + n - _free);
                Grow((int)Math.Min(wanted, _options.MaxCapacity));
            }
            if (_free < n)
            {
                int room = (int)Math.Ceiling(_options.EvictionFraction * Capacity);
                ForgetIdlest(Math.Max(n - _free, room), withRows: true, n);
                if (_free < n)
                {
                    throw new InvalidOperationException($"No room for {n} ids: {_free} rows free after forgetting every other id.");
                }
            }
        }
        long pendingLimit = (long)_options.PendingIdsPerRow * _options.MaxCapacity;
        if (Ids - Rows + n > pendingLimit)
        {
            ForgetIdlest((int)(Ids - Rows + n - pendingLimit), withRows: false, n);
        }
        if (2L * (Ids + _tombstones + n) > _hashMask + 1L)
        {
            Rehash(HashSizeFor(Ids + n + Capacity));
        }
    }

    /// <summary>Doubles (or more) the rows; row numbers stay, the new rows go on the free stack under the old free ones.</summary>
    private void Grow(int capacity)
    {
        var values = _values;
        var state = _state;
        var freeList = _freeList;
        int oldCapacity = Capacity;
        var free = new int[_free];
        Download(freeList, free);
        AllocateRows(capacity, firstFree: oldCapacity, keptFree: free);
        DeviceMemory.Copy(_device, values, _values, 0, (long)oldCapacity * _dimension);
        DeviceMemory.Copy(_device, state, _state, 0, (long)oldCapacity * _stateWidth * _dimension);
        values.Dispose();
        state.Dispose();
        freeList.Dispose();
        Growths++;
    }

    /// <summary>
    /// Forgets the <paramref name="count"/> idlest ids (least recently learned from, then by key) among those
    /// with a row (<paramref name="withRows"/>) or without one, never one of the <paramref name="staged"/> ids of the call.
    /// </summary>
    private void ForgetIdlest(int count, bool withRows, int staged)
    {
        var entries = new IdEntry[_hashMask + 1];
        Download(_hash, entries);
        var pinned = new HashSet<ulong>(_hostKeys.AsSpan(0, staged).ToArray());
        var candidates = new List<(long LastMs, ulong Key, int Bucket)>();
        for (int b = 0; b < entries.Length; b++)
        {
            ref var entry = ref entries[b];
            if (entry.Key != 0 && entry.Key != FeatureTable.Tombstone && (entry.RowPlusOne > 0) == withRows && !pinned.Contains(entry.Key))
            {
                candidates.Add((entry.LastMs, entry.Key, b));
            }
        }
        candidates.Sort();
        int take = Math.Min(count, candidates.Count);
        if (take == 0)
        {
            return;
        }
        var buckets = new int[take];
        for (int i = 0; i < take; i++)
        {
            buckets[i] = candidates[i].Bucket;
        }
        using var list = _device.Accelerator.Allocate1D<int>(take);
        Upload(list, buckets);
        Clear(_counters);
        var forget = new ForgetView { Buckets = Col(list), Counters = Col(_counters), Count = take };
        int threads = _kernels.Threads(take);
        _forgetBuckets(threads, threads, HashView(), forget, RowsView());
        AfterForget();
    }

    private int AfterForget()
    {
        Download(_counters, _hostCounters);
        int forgotten = _hostCounters[0];
        Ids -= forgotten;
        _tombstones += forgotten;
        _free += _hostCounters[1];
        Forgotten += forgotten;
        return forgotten;
    }

    /// <summary>A fresh hash table of <paramref name="size"/> buckets holding every live id (no tombstones).</summary>
    private void Rehash(int size)
    {
        var next = AllocateHash(size, out int mask);
        var to = new IdHashView { Entries = Col(next), Mask = mask };
        int threads = _kernels.Threads(_hashMask + 1L);
        _rehash(threads, threads, HashView(), to);
        _device.Accelerator.Synchronize();
        _hash.Dispose();
        _hash = next;
        _hashMask = mask;
        _tombstones = 0;
    }

    /// <summary>
    /// Allocates the rows' values, state and free stack for <paramref name="capacity"/> rows: rows from
    /// <paramref name="firstFree"/> on are free, with <paramref name="keptFree"/> (rows below it freed earlier) on
    /// top of the stack, handed out first.
    /// </summary>
    private void AllocateRows(int capacity, int firstFree, int[]? keptFree = null)
    {
        var accelerator = _device.Accelerator;
        _values = accelerator.Allocate1D<float>((long)capacity * _dimension);
        _state = accelerator.Allocate1D<float>((long)capacity * _stateWidth * _dimension);
        _freeList = accelerator.Allocate1D<int>(capacity);
        _freeTop ??= accelerator.Allocate1D<int>(1);
        Clear(_values);
        Clear(_state);
        keptFree ??= [];
        var free = new int[capacity - firstFree + keptFree.Length];
        int at = 0;
        // The stack pops from its end: the lowest new rows last in the list, the rows kept on top.
        for (int row = capacity - 1; row >= firstFree; row--)
        {
            free[at++] = row;
        }
        keptFree.CopyTo(free, at);
        Upload(_freeList, free);
        int top = free.Length;
        Upload(_freeTop, new ReadOnlySpan<int>(in top));
        _free = top;
        Capacity = capacity;
    }

    /// <summary>The default row: zeros, and the optimizer's starting state.</summary>
    private void UploadDefaultRow()
    {
        var state = new float[_stateWidth * _dimension];
        // Adagrad's accumulator, or FTRL's n (its z is 0: the closed form gives 0 back).
        state.AsSpan((_stateWidth - 1) * _dimension).Fill(_options.Optimizer.InitialAccumulator);
        Upload(_state, state);
    }

    private MemoryBuffer1D<IdEntry, Stride1D.Dense> AllocateHash(int size, out int mask)
    {
        mask = size - 1;
        var hash = _device.Accelerator.Allocate1D<IdEntry>(size);
        Clear(hash);
        return hash;
    }

    private static int HashSizeFor(long ids)
    {
        long size = (long)BitOperations.RoundUpToPowerOf2((ulong)Math.Max(64L, 4L * ids));
        if (size > 1 << 30)
        {
            throw new InvalidOperationException($"A hash table of {size} buckets is beyond an embedding table's limit.");
        }
        return (int)size;
    }
}

using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using ILGPU;
using ILGPU.Runtime;

namespace Inference.Kernels.Embeddings;

/// <summary>
/// One embedding row per id, resident on the accelerator, collision-free: an open-addressing id → row
/// table (compare-and-swap inserts, as the feature table's), the rows' values and their sparse optimizer's
/// state beside them. Row 0 is the shared default row that ids without a row of their own read (ids never
/// learned from, or learned from fewer than <see cref="EmbeddingTableOptions.MinCount"/> times); it learns
/// too. The table grows by doubling up to its maximum, then forgets its idlest ids (by the time they were
/// last learned from); <see cref="ForgetOlderThan"/> applies a TTL. Ids are 64-bit hashes of the id's text
/// (<see cref="EntityKey.Hash(string)"/>). Not thread-safe: one owner calls it.
/// </summary>
public sealed partial class EmbeddingTable : IDisposable
{
    private readonly DeviceContext _device;
    private readonly EmbeddingTableOptions _options;
    private readonly OptimizerView _optimizer;
    private readonly int _dimension;
    private readonly int _stateWidth;

    private readonly MemoryBuffer1D<ulong, Stride1D.Dense> _keys;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _buckets;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _rows;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _counters;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _unique;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _offsets;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _positions;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _gradients;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _output;
    private MemoryBuffer1D<IdEntry, Stride1D.Dense> _hash = null!;
    private MemoryBuffer1D<float, Stride1D.Dense> _values = null!;
    private MemoryBuffer1D<float, Stride1D.Dense> _state = null!;
    private MemoryBuffer1D<int, Stride1D.Dense> _freeList = null!;
    private MemoryBuffer1D<int, Stride1D.Dense> _freeTop = null!;
    private int _hashMask;
    private int _tombstones;
    private int _free;

    private readonly ulong[] _hostKeys;
    private readonly int[] _hostCounters = new int[2];
    private readonly long[] _order;
    private readonly int[] _hostUnique;
    private readonly int[] _hostOffsets;
    private readonly int[] _hostPositions;

    private readonly KernelLoader _kernels;
    private readonly Action<Index1D, int, IdHashView, IdBatchView, RowsView, OptimizerView> _touch;
    private readonly Action<Index1D, int, IdHashView, IdBatchView> _resolve;
    private readonly Action<Index1D, int, IdHashView, IdBatchView> _lookup;
    private readonly Action<Index1D, int, IdBatchView, RowsView> _gather;
    private readonly Action<Index1D, int, GradientView, RowsView, OptimizerView> _step;
    private readonly Action<Index1D, int, IdHashView, ForgetView, RowsView> _forgetBuckets;
    private readonly Action<Index1D, int, IdHashView, ForgetView, RowsView> _forgetOlderThan;
    private readonly Action<Index1D, int, IdHashView, IdHashView> _rehash;

    public EmbeddingTable(DeviceContext device, EmbeddingTableOptions options)
    {
        if (options.Dimension <= 0)
        {
            throw new ArgumentException($"Dimension must be 1 or more (got {options.Dimension}).", nameof(options));
        }
        if (options.InitialCapacity < 2 || options.MaxCapacity < options.InitialCapacity)
        {
            throw new ArgumentException($"Capacities must satisfy 2 <= initial ({options.InitialCapacity}) <= max ({options.MaxCapacity}): row 0 is the default row.", nameof(options));
        }
        if (options.MaxBatchIds <= 0 || options.MaxBatchIds >= options.MaxCapacity || options.MinCount < 1 || options.PendingIdsPerRow < 1)
        {
            throw new ArgumentException($"A call holds 1 to {options.MaxCapacity - 1} ids (got {options.MaxBatchIds}); MinCount and PendingIdsPerRow are 1 or more.", nameof(options));
        }
        if (!(options.EvictionFraction is > 0 and <= 1) || !(options.InitScale >= 0 && float.IsFinite(options.InitScale)))
        {
            throw new ArgumentException($"EvictionFraction must be in (0, 1] (got {options.EvictionFraction}) and InitScale 0 or more (got {options.InitScale}).", nameof(options));
        }
        if (options.Optimizer.Problem() is { } problem)
        {
            throw new ArgumentException($"Optimizer: {problem}.", nameof(options));
        }
        _device = device;
        _options = options;
        _dimension = options.Dimension;
        _stateWidth = options.Optimizer.StateWidth;
        _optimizer = View(options.Optimizer, options.InitScale);
        var accelerator = device.Accelerator;
        int batch = options.MaxBatchIds;
        _keys = accelerator.Allocate1D<ulong>(batch);
        _buckets = accelerator.Allocate1D<int>(batch);
        _rows = accelerator.Allocate1D<int>(batch);
        _counters = accelerator.Allocate1D<int>(2);
        _unique = accelerator.Allocate1D<int>(batch);
        _offsets = accelerator.Allocate1D<int>(batch + 1);
        _positions = accelerator.Allocate1D<int>(batch);
        _gradients = accelerator.Allocate1D<float>((long)batch * _dimension);
        _output = accelerator.Allocate1D<float>((long)batch * _dimension);
        _hostKeys = new ulong[batch];
        _order = new long[batch];
        _hostUnique = new int[batch];
        _hostOffsets = new int[batch + 1];
        _hostPositions = new int[batch];

        _kernels = new KernelLoader(device);
        _touch = _kernels.Load<IdHashView, IdBatchView, RowsView, OptimizerView>(EmbeddingKernels.Touch);
        _resolve = _kernels.Load<IdHashView, IdBatchView>(EmbeddingKernels.Resolve);
        _lookup = _kernels.Load<IdHashView, IdBatchView>(EmbeddingKernels.Lookup);
        _gather = _kernels.Load<IdBatchView, RowsView>(EmbeddingKernels.Gather);
        _step = _kernels.Load<GradientView, RowsView, OptimizerView>(EmbeddingKernels.Step);
        _forgetBuckets = _kernels.Load<IdHashView, ForgetView, RowsView>(EmbeddingKernels.ForgetBuckets);
        _forgetOlderThan = _kernels.Load<IdHashView, ForgetView, RowsView>(EmbeddingKernels.ForgetOlderThan);
        _rehash = _kernels.Load<IdHashView, IdHashView>(EmbeddingKernels.Rehash);

        AllocateRows(options.InitialCapacity, firstFree: 1);
        UploadDefaultRow();
        _hash = AllocateHash(HashSizeFor(options.InitialCapacity + batch), out _hashMask);
    }

    public EmbeddingTableOptions Options => _options;

    /// <summary>A new row's value at coordinate <paramref name="d"/> for <paramref name="id"/> (as the table stores it): uniform in [−scale, scale] by a hash of the id, the same on every node.</summary>
    public static float InitialValue(ulong id, int d, float scale) => EmbeddingKernels.InitialValue(id, d, scale);

    /// <summary>Values per row.</summary>
    public int Dimension => _dimension;

    /// <summary>Rows allocated, the default row included.</summary>
    public int Capacity { get; private set; }

    /// <summary>Ids known: with a row of their own, or counted on their way to one.</summary>
    public int Ids { get; private set; }

    /// <summary>Ids with a row of their own.</summary>
    public int Rows => Capacity - 1 - _free;

    /// <summary>Ids forgotten so far (TTL, room for new rows, or too many ids without a row).</summary>
    public long Forgotten { get; private set; }

    /// <summary>How many times the rows grew.</summary>
    public int Growths { get; private set; }

    /// <summary>
    /// The learning side: counts and dates each id (<paramref name="nowMs"/>), gives a row to each id that
    /// reaches its minimum count, and writes every id's row (0: the default row) into <paramref name="rows"/>.
    /// Before it, the table grows or forgets its idlest other ids so that each id of the call can get a row.
    /// </summary>
    public void Touch(ReadOnlySpan<ulong> ids, long nowMs, Span<int> rows)
    {
        int n = CheckCall(ids, rows);
        if (n == 0)
        {
            return;
        }
        StageKeys(ids);
        MakeRoom(n);
        Clear(_counters);
        var batch = BatchView(n, nowMs);
        int threads = _kernels.Threads(n);
        _touch(threads, threads, HashView(), batch, RowsView(), _optimizer);
        _resolve(threads, threads, HashView(), batch);
        Download(_rows, rows[..n]);
        Download(_counters, _hostCounters.AsSpan(0, 1));
        Ids += _hostCounters[0];
        int top = 0;
        Download(_freeTop, new Span<int>(ref top));
        System.Diagnostics.Debug.Assert(top >= 0, "MakeRoom left a free row for every id of the call.");
        _free = top;
    }

    /// <summary>The serving side: each id's row (0: the default row) without counting or dating it.</summary>
    public void Lookup(ReadOnlySpan<ulong> ids, Span<int> rows)
    {
        int n = CheckCall(ids, rows);
        if (n == 0)
        {
            return;
        }
        StageKeys(ids);
        int threads = _kernels.Threads(n);
        _lookup(threads, threads, HashView(), BatchView(n, 0));
        Download(_rows, rows[..n]);
    }

    /// <summary>The values of <paramref name="rows"/>, row after row, into <paramref name="output"/> (rows × <see cref="Dimension"/>).</summary>
    public void Gather(ReadOnlySpan<int> rows, Span<float> output)
    {
        int n = rows.Length;
        if (n > _options.MaxBatchIds || output.Length < (long)n * _dimension)
        {
            throw new ArgumentException($"A gather takes at most {_options.MaxBatchIds} rows and {_dimension} values of output per row (got {n} rows, {output.Length} values).", nameof(rows));
        }
        CheckRows(rows);
        Upload(_rows, rows);
        long values = (long)n * _dimension;
        int threads = _kernels.Threads(values);
        _gather(threads, threads, BatchView(n, 0), RowsView());
        Download(_output, output[..(int)values]);
    }

    /// <summary>
    /// One optimizer step on the rows a mini-batch touched: <paramref name="gradients"/> holds the loss's
    /// gradient for each position of <paramref name="rows"/> (rows × <see cref="Dimension"/>); a row that appears
    /// at several positions gets the sum of their gradients, in position order.
    /// </summary>
    public void Step(ReadOnlySpan<int> rows, ReadOnlySpan<float> gradients)
    {
        int n = rows.Length;
        if (n > _options.MaxBatchIds || gradients.Length != (long)n * _dimension)
        {
            throw new ArgumentException($"A step takes at most {_options.MaxBatchIds} rows and {_dimension} gradient values per row (got {n} rows, {gradients.Length} values).", nameof(rows));
        }
        if (n == 0)
        {
            return;
        }
        CheckRows(rows);
        int unique = GroupByRow(rows);
        Upload(_unique, _hostUnique.AsSpan(0, unique));
        Upload(_offsets, _hostOffsets.AsSpan(0, unique + 1));
        Upload(_positions, _hostPositions.AsSpan(0, n));
        Upload(_gradients, gradients);
        long values = (long)unique * _dimension;
        int threads = _kernels.Threads(values);
        _step(threads, threads, GradientView(unique), RowsView(), _optimizer);
        _device.Accelerator.Synchronize();
    }

    public void Dispose()
    {
        foreach (var buffer in new MemoryBuffer?[] { _keys, _buckets, _rows, _counters, _unique, _offsets, _positions, _gradients, _output, _hash, _values, _state, _freeList, _freeTop })
        {
            buffer?.Dispose();
        }
        _kernels.Dispose();
    }

    private static OptimizerView View(SparseOptimizer optimizer, float initScale) => new()
    {
        Kind = (int)optimizer.Kind,
        LearningRate = optimizer.LearningRate,
        InitialAccumulator = optimizer.InitialAccumulator,
        Beta = optimizer.Beta,
        L1 = optimizer.L1,
        L2 = optimizer.L2,
        InitScale = initScale,
    };

    /// <summary>Groups the positions of a step by row, rows ascending and positions in order within a row.</summary>
    private int GroupByRow(ReadOnlySpan<int> rows)
    {
        int n = rows.Length;
        for (int i = 0; i < n; i++)
        {
            _order[i] = ((long)rows[i] << 32) | (uint)i;
        }
        Array.Sort(_order, 0, n);
        int unique = 0;
        for (int k = 0; k < n; k++)
        {
            int row = (int)(_order[k] >> 32);
            if (unique == 0 || _hostUnique[unique - 1] != row)
            {
                _hostUnique[unique] = row;
                _hostOffsets[unique] = k;
                unique++;
            }
            _hostPositions[k] = (int)_order[k];
        }
        _hostOffsets[unique] = n;
        return unique;
    }

    private int CheckCall(ReadOnlySpan<ulong> ids, Span<int> rows)
    {
        if (ids.Length > _options.MaxBatchIds || rows.Length < ids.Length)
        {
            throw new ArgumentException($"A call takes at most {_options.MaxBatchIds} ids and a row for each (got {ids.Length} ids, room for {rows.Length} rows).", nameof(ids));
        }
        return ids.Length;
    }

    private void CheckRows(ReadOnlySpan<int> rows)
    {
        // An index past the rows would end the process on a GPU: refused here, on the host.
        foreach (int row in rows)
        {
            if ((uint)row >= (uint)Capacity)
            {
                throw new ArgumentOutOfRangeException(nameof(rows), row, $"Rows are 0 to {Capacity - 1}.");
            }
        }
    }

    private void StageKeys(ReadOnlySpan<ulong> ids)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            _hostKeys[i] = FeatureTable.TableKey(ids[i]);
        }
        Upload(_keys, _hostKeys.AsSpan(0, ids.Length));
    }

    private Column<T> Col<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged => DeviceMemory.Col(_device, buffer);

    private IdHashView HashView() => new() { Entries = Col(_hash), Mask = _hashMask };

    private IdBatchView BatchView(int count, long nowMs) => new()
    {
        Keys = Col(_keys),
        Bucket = Col(_buckets),
        Rows = Col(_rows),
        Counters = Col(_counters),
        Output = Col(_output),
        Count = count,
        NowMs = nowMs,
        MinCount = _options.MinCount,
    };

    private RowsView RowsView() => new()
    {
        Values = Col(_values),
        State = Col(_state),
        FreeList = Col(_freeList),
        FreeTop = Col(_freeTop),
        Dimension = _dimension,
        StateWidth = _stateWidth,
    };

    private GradientView GradientView(int unique) => new()
    {
        Rows = Col(_unique),
        Offsets = Col(_offsets),
        Positions = Col(_positions),
        Gradients = Col(_gradients),
        Unique = unique,
    };

    private void Upload<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, ReadOnlySpan<T> source, long offset = 0)
        where T : unmanaged => DeviceMemory.Upload(_device, buffer, source, offset);

    private void Download<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer, Span<T> target, long offset = 0)
        where T : unmanaged => DeviceMemory.Download(_device, buffer, target, offset);

    private void Clear<T>(MemoryBuffer1D<T, Stride1D.Dense> buffer)
        where T : unmanaged => DeviceMemory.Clear(_device, buffer);
}

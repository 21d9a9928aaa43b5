using System.Diagnostics.Metrics;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Embeddings;

namespace Inference.Engine.Features;

/// <summary>
/// The embedding tables of a model over ids, one per id input, on the device executor's accelerator and
/// called only on its thread. Ids and rows are laid out row-major (per row, one per input in declaration
/// order); embeddings row-major too (per row, the inputs' rows one after another: <see cref="Width"/> values).
/// </summary>
internal sealed class EmbeddingStore : IDisposable
{
    private const int InitialRows = 1_024;

    private readonly EmbeddingTable[] _tables;
    private readonly int[] _offsets;
    private readonly long[] _ttlMs;
    private readonly long[] _nextTtlScanMs;
    private readonly ulong[] _column;
    private readonly int[] _rows;
    private readonly float[] _values;
    // Per table, as of the last call: ids with a row, ids forgotten (read by the metrics on other threads).
    private readonly long[] _rowsHeld;
    private readonly long[] _forgotten;
    private readonly float _initScale;
    // In a pool: per table, each row touched since the last push and its values when first touched since then.
    private readonly Dictionary<ulong, float[]>[]? _changed;
    // Per table: for a LastOf input, its field's place among the feature table's last keys; -1 otherwise.
    private readonly int[] _lastOf;
    private long _lastTouchMs;

    /// <summary>The tables of <paramref name="inputs"/>, each taking calls of up to <paramref name="maxRows"/> rows (the largest serving batch or training mini-batch).</summary>
    /// <remarks>With <paramref name="tracksChanges"/> (a pool worker), the rows each call touches are recorded for <see cref="TakeChanges"/>.</remarks>
    public EmbeddingStore(DeviceContext device, IReadOnlyList<IdInputOptions> inputs, SparseOptimizer optimizer, float initScale, int maxRows, bool tracksChanges = false)
    {
        _initScale = initScale;
        _changed = tracksChanges ? [.. inputs.Select(_ => new Dictionary<ulong, float[]>())] : null;
        Inputs = inputs;
        LastOfFields = IdInputOptions.LastOfFields(inputs);
        _lastOf = [.. inputs.Select(i => i.Source == IdSource.LastOf ? LastOfFields.ToList().IndexOf(i.Field!) : -1)];
        _tables = new EmbeddingTable[inputs.Count];
        _offsets = new int[inputs.Count];
        _ttlMs = new long[inputs.Count];
        _nextTtlScanMs = new long[inputs.Count];
        int width = 0, widest = 0;
        for (int t = 0; t < inputs.Count; t++)
        {
            var input = inputs[t];
            _tables[t] = new EmbeddingTable(device, new EmbeddingTableOptions
            {
                Dimension = input.Dimension,
                InitialCapacity = Math.Min(InitialRows, input.Capacity),
                MaxCapacity = input.Capacity,
                MaxBatchIds = maxRows,
                MinCount = input.MinCount,
                InitScale = initScale,
                Optimizer = optimizer,
            });
            _offsets[t] = width;
            _ttlMs[t] = input.TtlMs;
            _nextTtlScanMs[t] = long.MinValue;
            width += input.Dimension;
            widest = Math.Max(widest, input.Dimension);
        }
        Width = width;
        _column = new ulong[maxRows];
        _rows = new int[maxRows];
        _values = new float[maxRows * widest];
        _rowsHeld = new long[inputs.Count];
        _forgotten = new long[inputs.Count];
    }

    public IReadOnlyList<IdInputOptions> Inputs { get; }

    /// <summary>The event fields the LastOf inputs read: the feature table keeps each entity's newest value of each (its last keys).</summary>
    public IReadOnlyList<string> LastOfFields { get; }

    /// <summary>
    /// Writes the LastOf inputs' ids of <paramref name="rows"/> rows from the last keys the feature table read
    /// for them (<see cref="LastOfFields"/> per row); the other ids, and every id of the rows <paramref name="keep"/>
    /// marks, are left as they are.
    /// </summary>
    public void FillLastOf(Span<ulong> ids, int rows, ReadOnlySpan<ulong> lastKeys, ReadOnlySpan<bool> keep = default)
    {
        int keys = LastOfFields.Count;
        for (int t = 0; t < _tables.Length; t++)
        {
            if (_lastOf[t] < 0)
            {
                continue;
            }
            for (int r = 0; r < rows; r++)
            {
                if (keep.IsEmpty || !keep[r])
                {
                    ids[r * _tables.Length + t] = lastKeys[r * keys + _lastOf[t]];
                }
            }
        }
    }

    /// <summary>Id inputs per row.</summary>
    public int Count => _tables.Length;

    /// <summary>Embedding values per row: the inputs' dimensions together.</summary>
    public int Width { get; }

    /// <summary>The tables, in declaration order (checkpoints, metrics).</summary>
    public IReadOnlyList<EmbeddingTable> Tables => _tables;

    /// <summary>Serving: the embeddings of <paramref name="rows"/> rows of ids, without counting them (an id without a row reads the default row).</summary>
    /// <remarks>Any number of rows: more than a call of the tables takes are read in several (stream scoring's batches).</remarks>
    public void Lookup(ReadOnlySpan<ulong> ids, int rows, Span<float> embeddings)
    {
        for (int start = 0; start < rows; start += _column.Length)
        {
            int n = Math.Min(_column.Length, rows - start);
            var part = ids.Slice(start * _tables.Length, n * _tables.Length);
            var into = embeddings.Slice(start * Width, n * Width);
            for (int t = 0; t < _tables.Length; t++)
            {
                Column(part, n, t);
                _tables[t].Lookup(_column.AsSpan(0, n), _rows.AsSpan(0, n));
                Spread(t, n, into);
            }
        }
    }

    /// <summary>
    /// Learning: counts and dates each id at <paramref name="nowMs"/> (label event time; ids past their TTL
    /// are forgotten first), writes each id's row to <paramref name="rowsOut"/> and the embeddings the
    /// mini-batch learns from to <paramref name="embeddings"/>.
    /// </summary>
    public void Touch(ReadOnlySpan<ulong> ids, int rows, long nowMs, Span<int> rowsOut, Span<float> embeddings)
    {
        for (int t = 0; t < _tables.Length; t++)
        {
            var table = _tables[t];
            if (_ttlMs[t] > 0 && nowMs >= _nextTtlScanMs[t])
            {
                // A scan per eighth of the TTL (of event time): an idle id lives at most 9/8 of it.
                table.ForgetOlderThan(nowMs - _ttlMs[t]);
                _nextTtlScanMs[t] = nowMs + Math.Max(1, _ttlMs[t] / 8);
            }
            Column(ids, rows, t);
            table.Touch(_column.AsSpan(0, rows), nowMs, _rows.AsSpan(0, rows));
            for (int r = 0; r < rows; r++)
            {
                rowsOut[r * _tables.Length + t] = _rows[r];
            }
            Spread(t, rows, embeddings);
            if (_changed?[t] is { } changed)
            {
                // The values before this mini-batch's step, for rows first touched since the last push (key 0: the default row).
                for (int r = 0; r < rows; r++)
                {
                    ulong key = _rows[r] == 0 ? 0 : _column[r];
                    if (!changed.ContainsKey(key))
                    {
                        changed[key] = embeddings.Slice(r * Width + _offsets[t], table.Dimension).ToArray();
                    }
                }
            }
        }
        _lastTouchMs = nowMs;
        Counted();
    }

    /// <summary>
    /// In a pool: each touched row's change since it was first touched after the last call (its values now less its
    /// values then), one block per id input; the record starts again. Rows forgotten meanwhile are left out.
    /// </summary>
    public IReadOnlyList<(string Input, int Dimension, ulong[] Keys, float[] Values)> TakeChanges()
    {
        var blocks = new List<(string, int, ulong[], float[])>();
        for (int t = 0; t < _tables.Length && _changed is not null; t++)
        {
            var changed = _changed[t];
            var table = _tables[t];
            int d = table.Dimension;
            var keys = new List<ulong>(changed.Count);
            var values = new List<float>(changed.Count * d);
            var pending = changed.Keys.ToArray();
            for (int start = 0; start < pending.Length; start += _column.Length)
            {
                int n = Math.Min(_column.Length, pending.Length - start);
                pending.AsSpan(start, n).CopyTo(_column);
                table.Lookup(_column.AsSpan(0, n), _rows.AsSpan(0, n));
                for (int i = 0; i < n; i++)
                {
                    _rows[i] = _column[i] == 0 ? 0 : _rows[i];
                }
                table.Gather(_rows.AsSpan(0, n), _values.AsSpan(0, n * d));
                for (int i = 0; i < n; i++)
                {
                    if (_column[i] != 0 && _rows[i] == 0)
                    {
                        continue;
                    }
                    var before = changed[_column[i]];
                    keys.Add(_column[i]);
                    for (int c = 0; c < d; c++)
                    {
                        values.Add(_values[i * d + c] - before[c]);
                    }
                }
            }
            changed.Clear();
            if (keys.Count > 0)
            {
                blocks.Add((Inputs[t].Name, d, [.. keys], [.. values]));
            }
        }
        return blocks;
    }

    /// <summary>
    /// In a pool: takes up the rows the parameter server holds (offsets from each row's initial values, key 0 the
    /// default row), creating the rows of ids this worker has not learned from; inputs it does not have are ignored.
    /// </summary>
    public void Adopt(string input, int dimension, ReadOnlySpan<ulong> keys, ReadOnlySpan<float> offsets)
    {
        int t = Inputs.ToList().FindIndex(i => i.Name == input);
        if (t < 0 || _tables[t].Dimension != dimension)
        {
            return;
        }
        var values = new float[keys.Length * dimension];
        for (int k = 0; k < keys.Length; k++)
        {
            for (int c = 0; c < dimension; c++)
            {
                float initial = keys[k] == 0 ? 0f : EmbeddingTable.InitialValue(keys[k], c, _initScale);
                values[k * dimension + c] = initial + offsets[k * dimension + c];
            }
        }
        _tables[t].Write(keys, values, _lastTouchMs);
        Counted();
    }

    /// <summary>In a pool: every row's offset from its initial values (what seeds a parameter server that restarted empty), one block per id input.</summary>
    public IReadOnlyList<(string Input, int Dimension, ulong[] Keys, float[] Values)> Offsets()
    {
        var blocks = new List<(string, int, ulong[], float[])>();
        for (int t = 0; t < _tables.Length; t++)
        {
            var snapshot = _tables[t].Snapshot();
            int d = snapshot.Dimension;
            var keys = new List<ulong> { 0 };
            var values = new List<float>(snapshot.Values.AsSpan(0, d).ToArray());
            for (int i = 0; i < snapshot.Keys.Length; i++)
            {
                int row = snapshot.Rows[i];
                if (row == 0)
                {
                    continue;
                }
                keys.Add(snapshot.Keys[i]);
                for (int c = 0; c < d; c++)
                {
                    values.Add(snapshot.Values[row * d + c] - EmbeddingTable.InitialValue(snapshot.Keys[i], c, _initScale));
                }
            }
            blocks.Add((Inputs[t].Name, d, [.. keys], [.. values]));
        }
        return blocks;
    }

    /// <summary>Takes the tables' counts for the metrics (after a call that may change them: learning, a restore).</summary>
    public void Counted()
    {
        for (int t = 0; t < _tables.Length; t++)
        {
            Volatile.Write(ref _rowsHeld[t], _tables[t].Rows);
            Volatile.Write(ref _forgotten[t], _tables[t].Forgotten);
        }
    }

    /// <summary>Ids holding a row of their own, per id input (any thread).</summary>
    public IEnumerable<Measurement<long>> RowsHeld() => Measure(_rowsHeld);

    /// <summary>Ids forgotten so far, per id input (any thread).</summary>
    public IEnumerable<Measurement<long>> Forgotten() => Measure(_forgotten);

    private IEnumerable<Measurement<long>> Measure(long[] values)
    {
        for (int t = 0; t < values.Length; t++)
        {
            yield return new Measurement<long>(Volatile.Read(ref values[t]), new KeyValuePair<string, object?>("input", Inputs[t].Name));
        }
    }

    /// <summary>One optimizer step per table on the rows <see cref="Touch"/> gave, with the loss's gradient per row (<see cref="Width"/> values).</summary>
    public void Step(ReadOnlySpan<int> rowsIn, int rows, ReadOnlySpan<float> gradients)
    {
        for (int t = 0; t < _tables.Length; t++)
        {
            int d = _tables[t].Dimension;
            for (int r = 0; r < rows; r++)
            {
                _rows[r] = rowsIn[r * _tables.Length + t];
                gradients.Slice(r * Width + _offsets[t], d).CopyTo(_values.AsSpan(r * d, d));
            }
            _tables[t].Step(_rows.AsSpan(0, rows), _values.AsSpan(0, rows * d));
        }
    }

    public void Dispose()
    {
        foreach (var table in _tables)
        {
            table.Dispose();
        }
    }

    private void Column(ReadOnlySpan<ulong> ids, int rows, int t)
    {
        for (int r = 0; r < rows; r++)
        {
            _column[r] = ids[r * _tables.Length + t];
        }
    }

    /// <summary>Gathers the rows of table <paramref name="t"/> (in <see cref="_rows"/>) into their place in each row's embeddings.</summary>
    private void Spread(int t, int rows, Span<float> embeddings)
    {
        int d = _tables[t].Dimension;
        _tables[t].Gather(_rows.AsSpan(0, rows), _values.AsSpan(0, rows * d));
        for (int r = 0; r < rows; r++)
        {
            _values.AsSpan(r * d, d).CopyTo(embeddings.Slice(r * Width + _offsets[t], d));
        }
    }
}

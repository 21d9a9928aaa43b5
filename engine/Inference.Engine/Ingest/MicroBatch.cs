using Apache.Arrow;
using Apache.Arrow.Types;
using Inference.Kernels.Features;

namespace Inference.Engine.Ingest;

/// <summary>
/// A micro-batch of decoded events as columns in page-locked memory, reused from batch to batch:
/// entity key hash (uint64), event time (int64 epoch ms), one float32 column per numeric field and
/// one uint64 column per key field (hashed). The device executor reads the columns in place
/// (<see cref="Columns"/>). <see cref="ToRecordBatch"/> exposes the same memory
/// as an Arrow record batch, no copy.
/// </summary>
/// <remarks>
/// The columns are <c>mlock</c>ed and, on CUDA, registered with the device through the executor
/// (<see cref="IPageLocker"/>), so uploads from them are DMA without a staging copy.
/// </remarks>
internal sealed class MicroBatch : IDisposable
{
    private readonly PinnedMemory _entities;
    private readonly PinnedMemory _times;
    private readonly PinnedMemory _values;
    private readonly PinnedMemory _keys;
    private readonly IPageLocker? _locker;
    private readonly IDisposable?[] _deviceLocks = new IDisposable?[4];

    /// <summary>Columns for <paramref name="capacity"/> rows; with a <paramref name="locker"/>, page-locked with its device.</summary>
    public MicroBatch(IReadOnlyList<string> fields, int capacity, IReadOnlyList<string>? keyFields = null, IPageLocker? locker = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Fields = fields;
        KeyFields = keyFields ?? [];
        Capacity = capacity;
        _entities = new PinnedMemory(capacity * sizeof(ulong));
        _times = new PinnedMemory(capacity * sizeof(long));
        _values = new PinnedMemory(Math.Max(1, fields.Count) * capacity * sizeof(float));
        _keys = new PinnedMemory(Math.Max(1, KeyFields.Count) * capacity * sizeof(ulong));
        Schema = BuildSchema(fields, KeyFields);
        _locker = locker;
        if (locker is not null)
        {
            PinnedMemory[] columns = [_entities, _times, _values, _keys];
            for (int i = 0; i < columns.Length; i++)
            {
                _deviceLocks[i] = locker.PageLock(columns[i].Address, columns[i].Length);
            }
        }
    }

    /// <summary>Numeric fields, one float column each.</summary>
    public IReadOnlyList<string> Fields { get; }

    /// <summary>Key fields, one column of 64-bit hashes each.</summary>
    public IReadOnlyList<string> KeyFields { get; }

    public int Capacity { get; }

    public int Count { get; private set; }

    public bool IsFull => Count == Capacity;

    /// <summary>Rows still free.</summary>
    public int Room => Capacity - Count;

    public Schema Schema { get; }

    /// <summary>True when every column is locked into RAM.</summary>
    public bool IsPageLocked => _entities.IsLocked && _times.IsLocked && _values.IsLocked && _keys.IsLocked;

    public Span<ulong> Entities => _entities.AsSpan<ulong>(Capacity);

    public Span<long> Times => _times.AsSpan<long>(Capacity);

    /// <summary>Field-major values: field f of row i at <c>f * Capacity + i</c>.</summary>
    public Span<float> Values => _values.AsSpan<float>(Fields.Count * Capacity);

    /// <summary>Field-major key hashes: key field k of row i at <c>k * Capacity + i</c>.</summary>
    public Span<ulong> Keys => _keys.AsSpan<ulong>(KeyFields.Count * Capacity);

    /// <summary>The row the next event is decoded into; it counts once committed.</summary>
    public int NextRow => Count;

    public void Commit() => Count++;

    /// <summary>Counts <paramref name="rows"/> rows written from <see cref="NextRow"/> on.</summary>
    public void Commit(int rows)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rows, Room);
        Count += rows;
    }

    /// <summary>Forgets the rows from <paramref name="count"/> on (a multi-event message that failed part way).</summary>
    public void Truncate(int count)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Count);
        Count = count;
    }

    public void Clear()
    {
        Count = 0;
        Selected.Clear();
    }

    /// <summary>The events of this batch chosen for stream scoring.</summary>
    public ScoreSelections Selected { get; } = new();

    /// <summary>The batch as an Arrow record batch over the same page-locked buffers (valid until <see cref="Clear"/>).</summary>
    public RecordBatch ToRecordBatch()
    {
        int n = Count;
        var columns = new IArrowArray[2 + Fields.Count + KeyFields.Count];
        columns[0] = new UInt64Array(new ArrowBuffer(_entities.Memory[..(n * sizeof(ulong))]), ArrowBuffer.Empty, n, 0, 0);
        columns[1] = new Int64Array(new ArrowBuffer(_times.Memory[..(n * sizeof(long))]), ArrowBuffer.Empty, n, 0, 0);
        for (int f = 0; f < Fields.Count; f++)
        {
            var slice = _values.Memory.Slice(f * Capacity * sizeof(float), n * sizeof(float));
            columns[2 + f] = new FloatArray(new ArrowBuffer(slice), ArrowBuffer.Empty, n, 0, 0);
        }
        for (int k = 0; k < KeyFields.Count; k++)
        {
            var slice = _keys.Memory.Slice(k * Capacity * sizeof(ulong), n * sizeof(ulong));
            columns[2 + Fields.Count + k] = new UInt64Array(new ArrowBuffer(slice), ArrowBuffer.Empty, n, 0, 0);
        }
        return new RecordBatch(Schema, columns, n);
    }

    /// <summary>The committed rows' columns as the feature table reads them.</summary>
    public BatchColumns Columns => new(this);

    private static Schema BuildSchema(IReadOnlyList<string> fields, IReadOnlyList<string> keyFields)
    {
        var builder = new Schema.Builder()
            .Field(f => f.Name("entity").DataType(UInt64Type.Default).Nullable(false))
            .Field(f => f.Name("ts").DataType(Int64Type.Default).Nullable(false));
        foreach (var field in fields)
        {
            builder.Field(f => f.Name(field).DataType(FloatType.Default).Nullable(false));
        }
        foreach (var field in keyFields)
        {
            builder.Field(f => f.Name(field).DataType(UInt64Type.Default).Nullable(false));
        }
        return builder.Build();
    }

    /// <summary>Frees the columns: whoever handed them to the device waits for it first.</summary>
    public void Dispose()
    {
        for (int i = 0; i < _deviceLocks.Length; i++)
        {
            _locker?.Unlock(_deviceLocks[i]);
            _deviceLocks[i] = null;
        }
        ((IDisposable)_entities).Dispose();
        ((IDisposable)_times).Dispose();
        ((IDisposable)_values).Dispose();
        ((IDisposable)_keys).Dispose();
    }

    /// <summary>The batch's columns as the table reads them: spans over the page-locked memory.</summary>
    public readonly struct BatchColumns(MicroBatch batch) : IBatchColumns
    {
        public int Count => batch.Count;

        public ReadOnlySpan<ulong> Entities => batch.Entities[..batch.Count];

        public ReadOnlySpan<long> Times => batch.Times[..batch.Count];

        public ReadOnlySpan<float> Numeric(int column) => batch.Values.Slice(column * batch.Capacity, batch.Count);

        public ReadOnlySpan<ulong> Keys(int column) => batch.Keys.Slice(column * batch.Capacity, batch.Count);

        /// <summary>Native memory, field-major at the batch's capacity: read in place on the CPU backend.</summary>
        public int PinnedStride => batch.Capacity;
    }
}

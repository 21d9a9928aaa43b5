using System.Buffers;
using System.Buffers.Text;
using Apache.Arrow;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;
using Inference.Engine.Pipeline;
using Inference.Kernels.Features;

namespace Inference.Engine.Ingest;

/// <summary>
/// Decodes an Arrow IPC stream (a schema and one or more record batches in one Kafka message, content
/// type "application/vnd.apache.arrow.stream") into micro-batch rows, column by column: thousands of
/// events per message from columnar producers. Columns by name: <c>entity</c> (utf8 or integer),
/// <c>ts</c> (int64 epoch ms or timestamp), each numeric field (float, double or integer) and each key
/// field (utf8 or integer; integers are hashed by their decimal text, as in JSON). Extra columns are
/// ignored. A message is all or nothing: a missing column, a wrong type, a null or a bad value rejects
/// it whole, batch unchanged.
/// </summary>
internal sealed class ArrowEventDecoder
{
    private readonly string[] _fields;
    private readonly string[] _keyFields;
    private readonly List<RecordBatch> _batches = [];
    private readonly NativeMemory _memory = new();

    public ArrowEventDecoder(IReadOnlyList<string> fields, IReadOnlyList<string>? keyFields = null)
    {
        _fields = [.. fields];
        _keyFields = [.. keyFields ?? []];
    }

    /// <summary>Events dated after this (epoch ms) are refused as <see cref="DecodeError.FutureTimestamp"/> (the whole message).</summary>
    public long MaxTimeMs { get; set; } = long.MaxValue;

    /// <summary>Decodes a message that lives in native memory (a Kafka payload read in place).</summary>
    public unsafe DecodeError Decode(byte* payload, int length, MicroBatch batch, ref int resume)
    {
        _memory.Reset(payload, length);
        return Decode(_memory.Memory, batch, ref resume);
    }

    /// <summary>
    /// Decodes the message's rows from <paramref name="resume"/> on, as many as fit. Returns with
    /// <paramref name="resume"/> at the next row when the batch filled first, or 0 when the message is
    /// done; the call that goes on (resume &gt; 0) must pass the same message, still in place.
    /// </summary>
    public DecodeError Decode(ReadOnlyMemory<byte> message, MicroBatch batch, ref int resume)
    {
        if (batch.IsFull)
        {
            throw new InvalidOperationException("The micro-batch is full.");
        }
        if (resume == 0)
        {
            // Parse and check every row before any is applied: the message may not fit in this batch.
            // (A call with resume > 0 goes on with the message of the call before: parsed and checked.)
            var error = Read(message);
            for (int i = 0; error == DecodeError.None && i < _batches.Count; i++)
            {
                error = Check(_batches[i]);
            }
            if (error != DecodeError.None)
            {
                _batches.Clear();
                return error;
            }
        }
        int skip = resume;
        foreach (var records in _batches)
        {
            if (skip >= records.Length)
            {
                skip -= records.Length;
                continue;
            }
            while (skip < records.Length)
            {
                if (batch.IsFull)
                {
                    // Kept for the next call, which goes on from resume.
                    return DecodeError.None;
                }
                int rows = Math.Min(batch.Room, records.Length - skip);
                Copy(records, skip, rows, batch);
                skip += rows;
                resume += rows;
            }
            skip = 0;
        }
        _batches.Clear();
        resume = 0;
        return DecodeError.None;
    }

    private DecodeError Read(ReadOnlyMemory<byte> message)
    {
        _batches.Clear();
        try
        {
            using var reader = new ArrowStreamReader(message);
            while (reader.ReadNextRecordBatch() is { } records)
            {
                _batches.Add(records);
            }
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            // The reader parses untrusted bytes and fails in many ways (flatbuffer bounds, bad
            // lengths, unsupported types); any of them means the message is not a usable stream.
            return DecodeError.BadArrow;
        }
        return _batches.Count == 0 ? DecodeError.BadArrow : DecodeError.None;
    }

    private DecodeError Check(RecordBatch records)
    {
        var entity = Column(records, "entity");
        var time = Column(records, "ts");
        if (entity is null || time is null)
        {
            return DecodeError.ArrowMissingColumn;
        }
        if (entity is not (StringArray or Int64Array or Int32Array) || time is not (Int64Array or TimestampArray))
        {
            return DecodeError.ArrowColumnType;
        }
        foreach (var name in _fields)
        {
            var column = Column(records, name);
            if (column is null)
            {
                return DecodeError.ArrowMissingColumn;
            }
            if (column is not (FloatArray or DoubleArray or Int32Array or Int64Array))
            {
                return DecodeError.ArrowColumnType;
            }
            if (column.NullCount > 0)
            {
                return DecodeError.ArrowNulls;
            }
            if (column is FloatArray floats && !Finite.All(floats.Values))
            {
                return DecodeError.NonNumericField;
            }
            if (column is DoubleArray doubles)
            {
                foreach (double value in doubles.Values)
                {
                    if (!float.IsFinite((float)value))
                    {
                        return DecodeError.NonNumericField;
                    }
                }
            }
        }
        foreach (var name in _keyFields)
        {
            var column = Column(records, name);
            if (column is null)
            {
                return DecodeError.ArrowMissingColumn;
            }
            if (column is not (StringArray or Int64Array or Int32Array))
            {
                return DecodeError.ArrowColumnType;
            }
            if (column.NullCount > 0)
            {
                return DecodeError.ArrowNulls;
            }
            if (column is StringArray keys && HasEmpty(keys))
            {
                return DecodeError.BadKeyField;
            }
        }
        if (entity.NullCount > 0 || time.NullCount > 0)
        {
            return DecodeError.ArrowNulls;
        }
        if (entity is StringArray entities && HasEmpty(entities))
        {
            return DecodeError.MissingEntity;
        }
        var unit = Unit(time);
        foreach (long value in ((PrimitiveArray<long>)time).Values)
        {
            long ms = value <= 0 ? 0 : ToMilliseconds(value, unit);
            if (ms <= 0)
            {
                return value == 0 ? DecodeError.MissingTime : DecodeError.BadTime;
            }
            if (ms > MaxTimeMs)
            {
                return DecodeError.FutureTimestamp;
            }
        }
        return DecodeError.None;
    }

    private void Copy(RecordBatch records, int start, int rows, MicroBatch batch)
    {
        int row = batch.NextRow;
        int capacity = batch.Capacity;
        HashColumn(Column(records, "entity")!, start, batch.Entities.Slice(row, rows));
        var time = Column(records, "ts")!;
        var times = ((PrimitiveArray<long>)time).Values.Slice(start, rows);
        var target = batch.Times.Slice(row, rows);
        var unit = Unit(time);
        if (unit == TimeUnit.Millisecond)
        {
            times.CopyTo(target);
        }
        else
        {
            for (int i = 0; i < rows; i++)
            {
                target[i] = ToMilliseconds(times[i], unit);
            }
        }
        var values = batch.Values;
        for (int f = 0; f < _fields.Length; f++)
        {
            var output = values.Slice(f * capacity + row, rows);
            switch (Column(records, _fields[f]))
            {
                case FloatArray floats:
                    floats.Values.Slice(start, rows).CopyTo(output);
                    break;
                case DoubleArray doubles:
                    Convert(doubles.Values.Slice(start, rows), output);
                    break;
                case Int64Array longs:
                    Convert(longs.Values.Slice(start, rows), output);
                    break;
                case Int32Array ints:
                    Convert(ints.Values.Slice(start, rows), output);
                    break;
            }
        }
        var keys = batch.Keys;
        for (int k = 0; k < _keyFields.Length; k++)
        {
            HashColumn(Column(records, _keyFields[k])!, start, keys.Slice(k * capacity + row, rows));
        }
        batch.Commit(rows);
    }

    private static IArrowArray? Column(RecordBatch records, string name)
    {
        int index = records.Schema.GetFieldIndex(name);
        return index < 0 ? null : records.Column(index);
    }

    /// <summary>The column's time unit (plain int64 columns are epoch milliseconds).</summary>
    private static TimeUnit Unit(IArrowArray time) => time.Data.DataType is TimestampType stamp ? stamp.Unit : TimeUnit.Millisecond;

    private static long ToMilliseconds(long value, TimeUnit unit) => unit switch
    {
        TimeUnit.Second => value > long.MaxValue / 1_000 ? -1 : value * 1_000,
        TimeUnit.Microsecond => value / 1_000,
        TimeUnit.Nanosecond => value / 1_000_000,
        _ => value,
    };

    private static void HashColumn(IArrowArray column, int start, Span<ulong> output)
    {
        switch (column)
        {
            case StringArray strings:
                // Straight over the offsets and the value buffer: no per-row accessor calls.
                var offsets = strings.ValueOffsets;
                var bytes = strings.Values;
                for (int i = 0; i < output.Length; i++)
                {
                    int from = offsets[start + i];
                    output[i] = EntityKey.Hash(bytes[from..offsets[start + i + 1]]);
                }
                break;
            case Int64Array longs:
                var values = longs.Values;
                for (int i = 0; i < output.Length; i++)
                {
                    output[i] = HashInteger(values[start + i]);
                }
                break;
            case Int32Array ints:
                var small = ints.Values;
                for (int i = 0; i < output.Length; i++)
                {
                    output[i] = HashInteger(small[start + i]);
                }
                break;
        }
    }

    /// <summary>An integer key hashed by its decimal text, so 42 names the same entity as "42".</summary>
    private static ulong HashInteger(long value)
    {
        Span<byte> text = stackalloc byte[20];
        Utf8Formatter.TryFormat(value, text, out int written);
        return EntityKey.Hash(text[..written]);
    }

    private static bool HasEmpty(StringArray strings)
    {
        var offsets = strings.ValueOffsets;
        for (int i = 0; i < strings.Length; i++)
        {
            if (offsets[i + 1] <= offsets[i])
            {
                return true;
            }
        }
        return false;
    }

    private static void Convert<T>(ReadOnlySpan<T> source, Span<float> output)
        where T : unmanaged, System.Numerics.INumberBase<T>
    {
        for (int i = 0; i < output.Length; i++)
        {
            output[i] = float.CreateTruncating(source[i]);
        }
    }

    /// <summary>Native memory (a Kafka payload) seen as <see cref="Memory{T}"/>, re-pointed per message.</summary>
    private sealed unsafe class NativeMemory : MemoryManager<byte>
    {
        private byte* _pointer;
        private int _length;

        public void Reset(byte* pointer, int length)
        {
            _pointer = pointer;
            _length = length;
        }

        public override Span<byte> GetSpan() => new(_pointer, _length);

        public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}

using System.Buffers.Binary;
using System.Text;
using Inference.Kernels.Features;

namespace Inference.Engine.Ingest;

/// <summary>
/// Decodes <c>inference.v1.Event</c> and <c>inference.v1.EventBatch</c> (proto/inference/v1/events.proto)
/// in place from the wire bytes into micro-batch rows: no message objects, no allocation. Unknown
/// fields are skipped, as protobuf readers do. An <c>EventBatch</c> is all or nothing: a bad event
/// rejects the message, which is set aside whole.
/// </summary>
internal sealed class ProtobufEventDecoder
{
    private const int WireVarint = 0;
    private const int WireFixed64 = 1;
    private const int WireLength = 2;
    private const int WireFixed32 = 5;

    private readonly byte[][] _fieldNames;
    private readonly byte[][] _keyNames;

    public ProtobufEventDecoder(IReadOnlyList<string> fields, IReadOnlyList<string>? keyFields = null)
    {
        _fieldNames = [.. fields.Select(Encoding.UTF8.GetBytes)];
        _keyNames = [.. (keyFields ?? []).Select(Encoding.UTF8.GetBytes)];
    }

    /// <summary>Events dated after this (epoch ms) are refused as <see cref="DecodeError.FutureTimestamp"/>.</summary>
    public long MaxTimeMs { get; set; } = long.MaxValue;

    /// <summary>Decodes one <c>Event</c> into the batch's next row and commits it; on error the batch is unchanged.</summary>
    public DecodeError TryDecode(ReadOnlySpan<byte> message, MicroBatch batch)
    {
        if (batch.IsFull)
        {
            throw new InvalidOperationException("The micro-batch is full.");
        }
        var error = DecodeEvent(message, batch, batch.NextRow);
        if (error == DecodeError.None)
        {
            batch.Commit();
        }
        return error;
    }

    /// <summary>
    /// Decodes an <c>EventBatch</c> from its event <paramref name="resume"/> on into the batch, as many
    /// as fit. Returns with <paramref name="resume"/> at the next event when the batch filled first,
    /// or 0 when the message is done. A bad event anywhere rejects the whole message, batch unchanged.
    /// </summary>
    public DecodeError DecodeBatch(ReadOnlySpan<byte> message, MicroBatch batch, ref int resume)
    {
        if (batch.IsFull)
        {
            throw new InvalidOperationException("The micro-batch is full.");
        }
        // One walk over the message. The first time, events are written as they are checked; once the
        // batch is full the rest are only checked (the message is all or nothing), and a bad event
        // anywhere takes back what was written. Later calls write the rest, checked already.
        bool first = resume == 0;
        int start = batch.Count;
        int index = 0;
        int next = -1;
        var reader = new WireReader(message);
        while (!reader.End)
        {
            if (!reader.TryReadTag(out int field, out int wire))
            {
                return Reject(batch, start, DecodeError.BadProtobuf);
            }
            if (field != 1 || wire != WireLength)
            {
                if (!reader.TrySkip(wire))
                {
                    return Reject(batch, start, DecodeError.BadProtobuf);
                }
                continue;
            }
            if (!reader.TryReadLength(out var slice))
            {
                return Reject(batch, start, DecodeError.BadProtobuf);
            }
            if (index++ < resume)
            {
                continue;
            }
            if (next < 0 && batch.IsFull)
            {
                next = index - 1;
                if (!first)
                {
                    break;
                }
            }
            var error = next < 0 ? DecodeEvent(slice, batch, batch.NextRow) : DecodeEvent(slice, null, 0);
            if (error != DecodeError.None)
            {
                return Reject(batch, start, error);
            }
            if (next < 0)
            {
                batch.Commit();
            }
        }
        resume = Math.Max(0, next);
        return DecodeError.None;
    }

    /// <summary>A bad <c>EventBatch</c>: nothing of it stays in the batch.</summary>
    private static DecodeError Reject(MicroBatch batch, int start, DecodeError error)
    {
        batch.Truncate(start);
        return error;
    }

    /// <summary>Checks one encoded <c>Event</c> as ingest would, writing nothing (e.g. before writing it to the events topic).</summary>
    public DecodeError Check(ReadOnlySpan<byte> message, long maxTimeMs) => DecodeEvent(message, null, 0, maxTimeMs);

    /// <summary>Checks one <c>Event</c>, and with a <paramref name="batch"/> writes it to <paramref name="row"/> (not committed).</summary>
    private DecodeError DecodeEvent(ReadOnlySpan<byte> message, MicroBatch? batch, int row) => DecodeEvent(message, batch, row, MaxTimeMs);

    private DecodeError DecodeEvent(ReadOnlySpan<byte> message, MicroBatch? batch, int row, long maxTimeMs)
    {
        bool write = batch is not null;
        int capacity = batch?.Capacity ?? 0;
        var values = write ? batch!.Values : default;
        var keys = write ? batch!.Keys : default;
        ulong entity = 0;
        long time = 0;
        ulong seen = 0;
        int seenCount = 0;
        var reader = new WireReader(message);
        while (!reader.End)
        {
            if (!reader.TryReadTag(out int field, out int wire))
            {
                return DecodeError.BadProtobuf;
            }
            switch (field)
            {
                case 1 when wire == WireLength:
                    if (!reader.TryReadLength(out var key))
                    {
                        return DecodeError.BadProtobuf;
                    }
                    entity = key.IsEmpty ? 0 : EntityKey.Hash(key);
                    if (key.IsEmpty)
                    {
                        return DecodeError.MissingEntity;
                    }
                    break;
                case 2 when wire == WireVarint:
                    if (!reader.TryReadVarint(out ulong raw))
                    {
                        return DecodeError.BadProtobuf;
                    }
                    time = (long)raw;
                    break;
                case 3 when wire == WireLength:
                {
                    if (!reader.TryReadLength(out var entry) || !TryReadEntry(entry, out var name, out var value, numeric: true))
                    {
                        return DecodeError.BadProtobuf;
                    }
                    int index = DecodeErrors.FieldIndex(_fieldNames, name);
                    if (index < 0)
                    {
                        break;
                    }
                    // proto3 may leave a zero value out of a map entry.
                    double number = value.IsEmpty ? 0 : BitConverter.UInt64BitsToDouble(BinaryPrimitives.ReadUInt64LittleEndian(value));
                    if (!float.IsFinite((float)number))
                    {
                        return DecodeError.NonNumericField;
                    }
                    if (write)
                    {
                        values[index * capacity + row] = (float)number;
                    }
                    seenCount += DecodeErrors.Mark(ref seen, index);
                    break;
                }
                case 4 when wire == WireLength:
                {
                    if (!reader.TryReadLength(out var entry) || !TryReadEntry(entry, out var name, out var value, numeric: false))
                    {
                        return DecodeError.BadProtobuf;
                    }
                    int index = DecodeErrors.FieldIndex(_keyNames, name);
                    if (index < 0)
                    {
                        break;
                    }
                    if (value.IsEmpty)
                    {
                        return DecodeError.BadKeyField;
                    }
                    if (write)
                    {
                        keys[index * capacity + row] = EntityKey.Hash(value);
                    }
                    seenCount += DecodeErrors.Mark(ref seen, _fieldNames.Length + index);
                    break;
                }
                default:
                    if (!reader.TrySkip(wire))
                    {
                        return DecodeError.BadProtobuf;
                    }
                    break;
            }
        }
        if (entity == 0)
        {
            return DecodeError.MissingEntity;
        }
        if (time <= 0)
        {
            return time == 0 ? DecodeError.MissingTime : DecodeError.BadTime;
        }
        if (time > maxTimeMs)
        {
            return DecodeError.FutureTimestamp;
        }
        if (seenCount < _fieldNames.Length + _keyNames.Length)
        {
            return DecodeError.MissingField;
        }
        if (write)
        {
            batch!.Entities[row] = entity;
            batch.Times[row] = time;
        }
        return DecodeError.None;
    }

    /// <summary>A map entry: key (field 1, string) and value (field 2: double as 8 bytes, or string).</summary>
    private static bool TryReadEntry(ReadOnlySpan<byte> entry, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value, bool numeric)
    {
        name = default;
        value = default;
        var reader = new WireReader(entry);
        while (!reader.End)
        {
            if (!reader.TryReadTag(out int field, out int wire))
            {
                return false;
            }
            if (field == 1 && wire == WireLength)
            {
                if (!reader.TryReadLength(out name))
                {
                    return false;
                }
            }
            else if (field == 2 && numeric && wire == WireFixed64)
            {
                if (!reader.TryReadFixed64(out value))
                {
                    return false;
                }
            }
            else if (field == 2 && !numeric && wire == WireLength)
            {
                if (!reader.TryReadLength(out value))
                {
                    return false;
                }
            }
            else if (!reader.TrySkip(wire))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>The protobuf wire format over a span: tags, varints, fixed and length-delimited fields.</summary>
    private ref struct WireReader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _position;

        public readonly bool End => _position >= _data.Length;

        public bool TryReadTag(out int field, out int wire)
        {
            field = 0;
            wire = 0;
            if (!TryReadVarint(out ulong tag) || tag > uint.MaxValue)
            {
                return false;
            }
            field = (int)(tag >> 3);
            wire = (int)(tag & 7);
            return field > 0;
        }

        public bool TryReadVarint(out ulong value)
        {
            value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_position >= _data.Length)
                {
                    return false;
                }
                byte b = _data[_position++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return true;
                }
            }
            return false;
        }

        public bool TryReadLength(out ReadOnlySpan<byte> slice)
        {
            slice = default;
            if (!TryReadVarint(out ulong length) || length > (ulong)(_data.Length - _position))
            {
                return false;
            }
            slice = _data.Slice(_position, (int)length);
            _position += (int)length;
            return true;
        }

        public bool TryReadFixed64(out ReadOnlySpan<byte> value) => TryTake(8, out value);

        public bool TrySkip(int wire)
        {
            switch (wire)
            {
                case WireVarint:
                    return TryReadVarint(out _);
                case WireFixed64:
                    return TryTake(8, out _);
                case WireLength:
                    return TryReadLength(out _);
                case WireFixed32:
                    return TryTake(4, out _);
                default:
                    return false;
            }
        }

        private bool TryTake(int count, out ReadOnlySpan<byte> value)
        {
            value = default;
            if (_data.Length - _position < count)
            {
                return false;
            }
            value = _data.Slice(_position, count);
            _position += count;
            return true;
        }
    }
}

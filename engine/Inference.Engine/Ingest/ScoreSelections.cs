using System.Text;
using System.Text.Json;
using Inference.Engine.Kafka;
using Inference.Proto.V1;

namespace Inference.Engine.Ingest;

/// <summary>
/// The events of a micro-batch chosen for stream scoring, in row order: the row, the entity key as
/// sent, where the event came from and the Kafka timestamp of its message. Reused with its batch.
/// </summary>
internal sealed class ScoreSelections
{
    private int[] _rows = new int[64];
    private int[] _entityEnds = new int[64];
    private byte[] _entityBytes = new byte[64 * 16];
    private int[] _partitions = new int[64];
    private long[] _offsets = new long[64];
    private int[] _indexes = new int[64];
    private long[] _timestamps = new long[64];
    private int _entityLength;

    public int Count { get; private set; }

    public ReadOnlySpan<int> Rows => _rows.AsSpan(0, Count);

    /// <summary>The entity keys as sent, UTF-8, one after the other: key i ends at <see cref="EntityEnds"/>[i].</summary>
    public ReadOnlySpan<byte> EntityBytes => _entityBytes.AsSpan(0, _entityLength);

    public ReadOnlySpan<int> EntityEnds => _entityEnds.AsSpan(0, Count);

    public ReadOnlySpan<int> Partitions => _partitions.AsSpan(0, Count);

    public ReadOnlySpan<long> Offsets => _offsets.AsSpan(0, Count);

    /// <summary>The event's place in its message (0 for a message of one event).</summary>
    public ReadOnlySpan<int> Indexes => _indexes.AsSpan(0, Count);

    /// <summary>The message's Kafka timestamp (epoch ms; -1 when it had none).</summary>
    public ReadOnlySpan<long> Timestamps => _timestamps.AsSpan(0, Count);

    /// <summary>The entity key of selection <paramref name="i"/>, UTF-8.</summary>
    public ReadOnlySpan<byte> Entity(int i) => _entityBytes.AsSpan(i == 0 ? 0 : _entityEnds[i - 1], _entityEnds[i] - (i == 0 ? 0 : _entityEnds[i - 1]));

    public void Add(int row, string entity, int partition, long offset, int index, long timestampMs)
    {
        int length = Encoding.UTF8.GetByteCount(entity);
        Encoding.UTF8.GetBytes(entity, Reserve(length));
        Append(row, length, partition, offset, index, timestampMs);
    }

    public void Add(int row, ReadOnlySpan<byte> entity, int partition, long offset, int index, long timestampMs)
    {
        entity.CopyTo(Reserve(entity.Length));
        Append(row, entity.Length, partition, offset, index, timestampMs);
    }

    /// <summary>Room for the next entity's bytes, written by the caller before <see cref="Append"/>.</summary>
    internal Span<byte> Reserve(int length)
    {
        if (_entityLength + length > _entityBytes.Length)
        {
            Array.Resize(ref _entityBytes, Math.Max(_entityBytes.Length * 2, _entityLength + length));
        }
        return _entityBytes.AsSpan(_entityLength, length);
    }

    internal void Append(int row, int entityLength, int partition, long offset, int index, long timestampMs)
    {
        if (Count == _rows.Length)
        {
            int size = Count * 2;
            Array.Resize(ref _rows, size);
            Array.Resize(ref _entityEnds, size);
            Array.Resize(ref _partitions, size);
            Array.Resize(ref _offsets, size);
            Array.Resize(ref _indexes, size);
            Array.Resize(ref _timestamps, size);
        }
        _entityLength += entityLength;
        _rows[Count] = row;
        _entityEnds[Count] = _entityLength;
        _partitions[Count] = partition;
        _offsets[Count] = offset;
        _indexes[Count] = index;
        _timestamps[Count] = timestampMs;
        Count++;
    }

    public void Clear()
    {
        Count = 0;
        _entityLength = 0;
    }
}

/// <summary>
/// Which decoded events stream scoring takes, and their entity keys as sent (the micro-batch holds only
/// hashes): every event, or those whose selection field is true, a nonzero number or "true". Runs on
/// the ingest thread after an event decoded; costs a second look at selected messages only when every
/// event is selected, a look at each message otherwise.
/// </summary>
internal sealed class ScoreSelector(string? field)
{
    private static readonly byte[] EntityName = "entity"u8.ToArray();
    private readonly byte[]? _field = field is null ? null : Encoding.UTF8.GetBytes(field);
    private readonly string? _fieldName = field;

    /// <summary>Adds the rows <paramref name="first"/>.. of <paramref name="batch"/> that one message decoded into, when selected.</summary>
    public void Capture(EventFormat format, ReadOnlySpan<byte> message, MicroBatch batch, int first, int firstIndex, int partition, long offset, long timestampMs)
    {
        int rows = batch.Count - first;
        switch (format)
        {
            case EventFormat.Json:
                if (Json(message, batch.Selected, out int length))
                {
                    batch.Selected.Append(first, length, partition, offset, 0, timestampMs);
                }
                break;
            case EventFormat.Protobuf:
                var single = Event.Parser.ParseFrom(message);
                if (Selected(single))
                {
                    batch.Selected.Add(first, single.Entity, partition, offset, 0, timestampMs);
                }
                break;
            case EventFormat.ProtobufBatch:
                var events = EventBatch.Parser.ParseFrom(message).Events;
                for (int r = 0; r < rows && firstIndex + r < events.Count; r++)
                {
                    var one = events[firstIndex + r];
                    if (Selected(one))
                    {
                        batch.Selected.Add(first + r, one.Entity, partition, offset, firstIndex + r, timestampMs);
                    }
                }
                break;
            default:
                // Arrow record batches are applied, not stream-scored (counted by the caller).
                break;
        }
    }

    private bool Selected(Event e) =>
        _fieldName is null
        || (e.Values.TryGetValue(_fieldName, out double value) && value != 0 && !double.IsNaN(value))
        || (e.Keys.TryGetValue(_fieldName, out string? text) && string.Equals(text, "true", StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Reads whether a JSON event is selected and copies its entity key (as sent, unescaped) into
    /// <paramref name="into"/>'s next room; the caller appends the selection when true.
    /// </summary>
    private bool Json(ReadOnlySpan<byte> json, ScoreSelections into, out int length)
    {
        length = -1;
        bool selected = _field is null;
        var reader = new Utf8JsonReader(json);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return false;
        }
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals(EntityName))
            {
                reader.Read();
                // A numeric key is taken by its JSON text, as the decoder hashes it.
                if (reader.TokenType == JsonTokenType.String && reader.ValueIsEscaped)
                {
                    var room = into.Reserve(reader.ValueSpan.Length);
                    length = reader.CopyString(room);
                }
                else
                {
                    reader.ValueSpan.CopyTo(into.Reserve(reader.ValueSpan.Length));
                    length = reader.ValueSpan.Length;
                }
            }
            else if (_field is not null && reader.ValueTextEquals(_field))
            {
                reader.Read();
                selected = reader.TokenType switch
                {
                    JsonTokenType.True => true,
                    JsonTokenType.Number => reader.TryGetDouble(out double number) && number != 0,
                    JsonTokenType.String => reader.ValueTextEquals("true"u8),
                    _ => false,
                };
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
            if (length >= 0 && (selected || _field is null))
            {
                return true;
            }
        }
        return selected && length >= 0;
    }
}

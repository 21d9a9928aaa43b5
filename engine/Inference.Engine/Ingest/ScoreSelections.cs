using System.Text;
using System.Text.Json;
using Inference.Kernels.Features;
using Inference.Proto.V1;
using FeatureWatermark = Inference.Engine.Features.FeatureWatermark;

namespace Inference.Engine.Ingest;

/// <summary>
/// The events of a micro-batch chosen for stream scoring, in row order: the row, the entity key as
/// sent, where the event came from and the Kafka timestamp of its message. Reused with its batch.
/// </summary>
public sealed class ScoreSelections
{
    private int[] _rows = new int[64];
    private string[] _entities = new string[64];
    private int[] _partitions = new int[64];
    private long[] _offsets = new long[64];
    private int[] _indexes = new int[64];
    private long[] _timestamps = new long[64];

    public int Count { get; private set; }

    public ReadOnlySpan<int> Rows => _rows.AsSpan(0, Count);

    public ReadOnlySpan<string> Entities => _entities.AsSpan(0, Count);

    public ReadOnlySpan<int> Partitions => _partitions.AsSpan(0, Count);

    public ReadOnlySpan<long> Offsets => _offsets.AsSpan(0, Count);

    /// <summary>The event's place in its message (0 for a message of one event).</summary>
    public ReadOnlySpan<int> Indexes => _indexes.AsSpan(0, Count);

    /// <summary>The message's Kafka timestamp (epoch ms; -1 when it had none).</summary>
    public ReadOnlySpan<long> Timestamps => _timestamps.AsSpan(0, Count);

    public void Add(int row, string entity, int partition, long offset, int index, long timestampMs)
    {
        if (Count == _rows.Length)
        {
            int size = Count * 2;
            Array.Resize(ref _rows, size);
            Array.Resize(ref _entities, size);
            Array.Resize(ref _partitions, size);
            Array.Resize(ref _offsets, size);
            Array.Resize(ref _indexes, size);
            Array.Resize(ref _timestamps, size);
        }
        _rows[Count] = row;
        _entities[Count] = entity;
        _partitions[Count] = partition;
        _offsets[Count] = offset;
        _indexes[Count] = index;
        _timestamps[Count] = timestampMs;
        Count++;
    }

    public void Clear()
    {
        Array.Clear(_entities, 0, Count);
        Count = 0;
    }
}

/// <summary>
/// Receives the selected events of each applied micro-batch, on the device executor right after the
/// apply, with the state they were applied to (stream scoring).
/// </summary>
public interface IScoredBatchSink
{
    /// <summary>Which events of each message to take (on the ingest thread, after it decoded).</summary>
    ScoreSelector Selector { get; }

    void Applied(MicroBatch batch, FeatureTable table, Func<FeatureWatermark> watermark);

    /// <summary>On the ingest thread before it hands on a batch: waits while too many applied batches wait to be scored (backpressure).</summary>
    void WaitForRoom(CancellationToken cancellation);
}

/// <summary>
/// Which decoded events stream scoring takes, and their entity keys as sent (the micro-batch holds only
/// hashes): every event, or those whose selection field is true, a nonzero number or "true". Runs on
/// the ingest thread after an event decoded; costs a second look at selected messages only when every
/// event is selected, a look at each message otherwise.
/// </summary>
public sealed class ScoreSelector(string? field)
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
                if (Json(message, out string? entity) && entity is not null)
                {
                    batch.Selected.Add(first, entity, partition, offset, 0, timestampMs);
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

    private bool Json(ReadOnlySpan<byte> json, out string? entity)
    {
        entity = null;
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
                entity = reader.TokenType == JsonTokenType.String ? reader.GetString() : Encoding.UTF8.GetString(reader.ValueSpan);
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
            if (entity is not null && (selected || _field is null))
            {
                return true;
            }
        }
        return selected;
    }
}

using System.Buffers;
using System.Text.Json;
using Confluent.Kafka;

namespace Inference.Engine.Outputs;

/// <summary>How far stream scoring went in one source partition: the last offset and index (within a message of many events) done.</summary>
internal readonly record struct ScoredPosition(long Offset, int Index) : IComparable<ScoredPosition>
{
    /// <summary>Everything of the message at <paramref name="offset"/> and before.</summary>
    public static ScoredPosition Through(long offset) => new(offset, int.MaxValue);

    public int CompareTo(ScoredPosition other) => Offset != other.Offset ? Offset.CompareTo(other.Offset) : Index.CompareTo(other.Index);
}

/// <summary>A transaction of one producer: its generation (one per start) and sequence within it (one per attempt).</summary>
internal readonly record struct TransactionName(long Generation, long Sequence)
{
    public override string ToString() => $"{Generation}.{Sequence}";
}

/// <summary>
/// One progress record, written to the progress topic (partition 0, keyed by transactional id) inside
/// every stream-scoring transaction. It names the transaction (<see cref="Name"/>: the producer's
/// generation and the transaction's sequence, as the headers of its score records do) and
/// <see cref="Base"/>, the transaction before it that its producer saw commit. A record is written
/// before its transaction's fate is known, so it says nothing of its own commit; the base it names
/// did commit. That is what makes the committed transactions checkable without a broker that filters
/// aborted ones: a transaction is known committed once a later record names it as its base.
/// </summary>
/// <remarks>
/// <see cref="Committed"/> is the progress as of <see cref="Base"/> (known committed when this record was
/// written): a restart resumes from the newest record's. <see cref="Progress"/> is the progress once this
/// transaction commits; <see cref="Records"/> the score records it wrote.
/// </remarks>
internal sealed record ProgressRecord(string TransactionalId, string Topic, TransactionName Name, TransactionName? Base, int Records,
    IReadOnlyDictionary<int, ScoredPosition> Committed, IReadOnlyDictionary<int, ScoredPosition> Progress)
{
    public void WriteTo(IBufferWriter<byte> buffer)
    {
        using var json = new Utf8JsonWriter(buffer);
        json.WriteStartObject();
        json.WriteString("transactionalId", TransactionalId);
        json.WriteString("topic", Topic);
        json.WriteNumber("generation", Name.Generation);
        json.WriteNumber("sequence", Name.Sequence);
        if (Base is { } based)
        {
            json.WriteStartObject("base");
            json.WriteNumber("generation", based.Generation);
            json.WriteNumber("sequence", based.Sequence);
            json.WriteEndObject();
        }
        json.WriteNumber("records", Records);
        // [partition, offset, index] triples, sorted: compact, since one record is written per transaction.
        WritePositions(json, "committed", Committed);
        WritePositions(json, "progress", Progress);
        json.WriteEndObject();
    }

    private static void WritePositions(Utf8JsonWriter json, string name, IReadOnlyDictionary<int, ScoredPosition> positions)
    {
        json.WriteStartArray(name);
        foreach (var (partition, at) in positions.OrderBy(p => p.Key))
        {
            json.WriteStartArray();
            json.WriteNumberValue(partition);
            json.WriteNumberValue(at.Offset);
            json.WriteNumberValue(at.Index);
            json.WriteEndArray();
        }
        json.WriteEndArray();
    }

    /// <summary>A record as written, or null when it is not one (of this format or an earlier one).</summary>
    public static ProgressRecord? Parse(ReadOnlySpan<byte> value)
    {
        try
        {
            var reader = new Utf8JsonReader(value);
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement;
            string id = root.GetProperty("transactionalId").GetString() ?? "";
            string topic = root.GetProperty("topic").GetString() ?? "";
            if (!root.TryGetProperty("generation", out var generation))
            {
                // The format before generations: one record per committed-or-not transaction, trusted as committed.
                var old = new Dictionary<int, ScoredPosition>();
                foreach (var p in root.GetProperty("partitions").EnumerateArray())
                {
                    old[p.GetProperty("partition").GetInt32()] = new(p.GetProperty("offset").GetInt64(), p.GetProperty("index").GetInt32());
                }
                return new ProgressRecord(id, topic, new(0, 0), null, 0, old, old);
            }
            TransactionName? based = root.TryGetProperty("base", out var b)
                ? new TransactionName(b.GetProperty("generation").GetInt64(), b.GetProperty("sequence").GetInt64())
                : null;
            return new ProgressRecord(id, topic, new(generation.GetInt64(), root.GetProperty("sequence").GetInt64()), based,
                root.GetProperty("records").GetInt32(), ReadPositions(root.GetProperty("committed")), ReadPositions(root.GetProperty("progress")));
        }
        catch (Exception error) when (error is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    private static Dictionary<int, ScoredPosition> ReadPositions(JsonElement array)
    {
        var result = new Dictionary<int, ScoredPosition>();
        foreach (var p in array.EnumerateArray())
        {
            result[p[0].GetInt32()] = new(p[1].GetInt64(), p[2].GetInt32());
        }
        return result;
    }
}

/// <summary>
/// Reads a progress topic whole (partition 0, read_uncommitted: every record written, committed or
/// not, since the reader decides from the records themselves), within a deadline. Throws a
/// <see cref="TimeoutException"/> naming the topic when the end is not reached in time: a start must
/// not go on from a partial read.
/// </summary>
internal static class ProgressTopic
{
    public static List<(long Offset, ProgressRecord Record)> ReadAll(TimeProvider time, ConsumerConfig config, string topic, TimeSpan timeout, bool readCommitted = false)
    {
        var records = new List<(long, ProgressRecord)>();
        Read(time, config, topic, timeout, readCommitted, 0, (offset, value) =>
        {
            if (ProgressRecord.Parse(value) is { } record)
            {
                records.Add((offset, record));
            }
            return true;
        });
        return records;
    }

    /// <summary>
    /// Whether a record whose value is <paramref name="value"/> is visible to a read_committed reader
    /// from <paramref name="from"/> on (the probe of a transaction that was aborted: a broker that
    /// filters aborted transactions hides it).
    /// </summary>
    public static bool IsVisibleCommitted(TimeProvider time, ConsumerConfig config, string topic, long from, ReadOnlySpan<byte> value, TimeSpan timeout)
    {
        byte[] wanted = value.ToArray();
        bool seen = false;
        Read(time, config, topic, timeout, readCommitted: true, from, (_, record) =>
        {
            seen = record.SequenceEqual(wanted);
            return !seen;
        });
        return seen;
    }

    /// <summary>The end offset of the topic's partition 0 now.</summary>
    public static long End(ConsumerConfig config, string topic, TimeSpan timeout)
    {
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(config).Build();
        return consumer.QueryWatermarkOffsets(new TopicPartition(topic, 0), timeout).High.Value;
    }

    private static void Read(TimeProvider time, ConsumerConfig config, string topic, TimeSpan timeout, bool readCommitted, long from, Func<long, byte[], bool> handle)
    {
        config.EnableAutoCommit = false;
        config.IsolationLevel = readCommitted ? IsolationLevel.ReadCommitted : IsolationLevel.ReadUncommitted;
        config.EnablePartitionEof = true;
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(config).Build();
        var partition = new TopicPartition(topic, 0);
        long started = time.GetTimestamp();
        WatermarkOffsets marks;
        try
        {
            marks = consumer.QueryWatermarkOffsets(partition, timeout);
        }
        catch (KafkaException error)
        {
            throw new TimeoutException($"the progress topic '{topic}' could not be read: {error.Error.Reason}", error);
        }
        long next = Math.Max(from, marks.Low.Value);
        if (marks.High.Value <= next)
        {
            return;
        }
        consumer.Assign(new TopicPartitionOffset(partition, next));
        while (next < marks.High.Value)
        {
            var left = timeout - time.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException($"the progress topic '{topic}' was not read to its end ({marks.High.Value}) within {timeout.TotalSeconds:0} s: at offset {next}");
            }
            ConsumeResult<Ignore, byte[]>? result;
            try
            {
                result = consumer.Consume(left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
            }
            catch (ConsumeException error) when (!error.Error.IsFatal)
            {
                throw new TimeoutException($"the progress topic '{topic}' could not be read: {error.Error.Reason}", error);
            }
            if (result is null)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                break;
            }
            next = result.Offset.Value + 1;
            if (result.Message?.Value is { } value && !handle(result.Offset.Value, value))
            {
                return;
            }
        }
    }
}

using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using Inference.Proto.V1;

namespace Inference.Engine.Outputs;

/// <summary>
/// Writes scored-event records (<see cref="ScoredEvent"/>, JSON as its protobuf JSON mapping reads it,
/// or its protobuf encoding) straight into one reused buffer: nothing is allocated per record. The
/// watermark, when included, is encoded once per batch by the caller and copied in as is.
/// </summary>
internal sealed class ScoreRecordEncoder
{
    private static readonly JsonEncodedText EntityName = JsonEncodedText.Encode("entity");
    private static readonly JsonEncodedText SourceName = JsonEncodedText.Encode("source");
    private static readonly JsonEncodedText TopicName = JsonEncodedText.Encode("topic");
    private static readonly JsonEncodedText PartitionName = JsonEncodedText.Encode("partition");
    private static readonly JsonEncodedText OffsetName = JsonEncodedText.Encode("offset");
    private static readonly JsonEncodedText IndexName = JsonEncodedText.Encode("index");
    private static readonly JsonEncodedText ScoreName = JsonEncodedText.Encode("score");
    private static readonly JsonEncodedText ModelVersionName = JsonEncodedText.Encode("modelVersion");
    private static readonly JsonEncodedText EventTimeName = JsonEncodedText.Encode("eventTimeMs");
    private static readonly JsonEncodedText AppliedOffsetName = JsonEncodedText.Encode("appliedOffset");
    private static readonly JsonEncodedText WatermarkName = JsonEncodedText.Encode("watermark");
    private static readonly JsonEncodedText FeaturesName = JsonEncodedText.Encode("features");

    private readonly OutputFormat _format;
    private readonly ArrayBufferWriter<byte> _buffer = new(1_024);
    private readonly Utf8JsonWriter _json;
    private readonly byte[] _topicUtf8;
    private readonly JsonEncodedText _topicJson;
    private byte[] _protobuf = new byte[1_024];

    public ScoreRecordEncoder(OutputFormat format, string topic)
    {
        _format = format;
        _json = new Utf8JsonWriter(_buffer, new JsonWriterOptions { SkipValidation = true });
        _topicUtf8 = Encoding.UTF8.GetBytes(topic);
        _topicJson = JsonEncodedText.Encode(topic);
    }

    /// <summary>
    /// The record of one scored event, valid until the next call. The watermark is the batch's, encoded
    /// once (JSON or protobuf, as the format), or empty; the features are the model inputs as scored, or empty.
    /// </summary>
    public ReadOnlySpan<byte> Encode(ReadOnlySpan<byte> entity, int partition, long offset, int index, float score, long modelVersion, long eventTimeMs,
        long appliedOffset, ReadOnlySpan<byte> watermark, ReadOnlySpan<float> features) =>
        _format == OutputFormat.Protobuf
            ? Protobuf(entity, partition, offset, index, score, modelVersion, eventTimeMs, appliedOffset, watermark, features)
            : Json(entity, partition, offset, index, score, modelVersion, eventTimeMs, appliedOffset, watermark, features);

    /// <summary>A watermark as records carry it in this format (once per batch).</summary>
    public byte[] EncodeWatermark(Proto.V1.FeatureWatermark watermark) =>
        _format == OutputFormat.Protobuf ? watermark.ToByteArray() : Encoding.UTF8.GetBytes(JsonFormatter.Default.Format(watermark));

    private ReadOnlySpan<byte> Json(ReadOnlySpan<byte> entity, int partition, long offset, int index, float score, long modelVersion, long eventTimeMs,
        long appliedOffset, ReadOnlySpan<byte> watermark, ReadOnlySpan<float> features)
    {
        _buffer.ResetWrittenCount();
        _json.Reset();
        var json = _json;
        json.WriteStartObject();
        json.WriteString(EntityName, entity);
        json.WriteStartObject(SourceName);
        json.WriteString(TopicName, _topicJson);
        json.WriteNumber(PartitionName, partition);
        json.WriteNumber(OffsetName, offset);
        json.WriteNumber(IndexName, index);
        json.WriteEndObject();
        json.WriteNumber(ScoreName, score);
        json.WriteNumber(ModelVersionName, modelVersion);
        json.WriteNumber(EventTimeName, eventTimeMs);
        json.WriteNumber(AppliedOffsetName, appliedOffset);
        if (!watermark.IsEmpty)
        {
            json.WritePropertyName(WatermarkName);
            json.WriteRawValue(watermark, skipInputValidation: true);
        }
        if (!features.IsEmpty)
        {
            json.WriteStartArray(FeaturesName);
            foreach (float value in features)
            {
                json.WriteNumberValue(value);
            }
            json.WriteEndArray();
        }
        json.WriteEndObject();
        json.Flush();
        return _buffer.WrittenSpan;
    }

    // Field numbers and wire types of inference.v1.ScoredEvent and EventSource (outputs.proto).
    private const byte EntityTag = (ScoredEvent.EntityFieldNumber << 3) | 2;
    private const byte SourceTag = (ScoredEvent.SourceFieldNumber << 3) | 2;
    private const byte ScoreTag = (ScoredEvent.ScoreFieldNumber << 3) | 5;
    private const byte ModelVersionTag = ScoredEvent.ModelVersionFieldNumber << 3;
    private const byte EventTimeTag = ScoredEvent.EventTimeMsFieldNumber << 3;
    private const byte WatermarkTag = (ScoredEvent.WatermarkFieldNumber << 3) | 2;
    private const byte FeaturesTag = (ScoredEvent.FeaturesFieldNumber << 3) | 2;
    private const byte AppliedOffsetTag = ScoredEvent.AppliedOffsetFieldNumber << 3;
    private const byte SourceTopicTag = (EventSource.TopicFieldNumber << 3) | 2;
    private const byte SourcePartitionTag = EventSource.PartitionFieldNumber << 3;
    private const byte SourceOffsetTag = EventSource.OffsetFieldNumber << 3;
    private const byte SourceIndexTag = EventSource.IndexFieldNumber << 3;

    private ReadOnlySpan<byte> Protobuf(ReadOnlySpan<byte> entity, int partition, long offset, int index, float score, long modelVersion, long eventTimeMs,
        long appliedOffset, ReadOnlySpan<byte> watermark, ReadOnlySpan<float> features)
    {
        // Proto3 leaves fields at their default out; parsers read either way.
        int source = 1 + CodedOutputStream.ComputeLengthSize(_topicUtf8.Length) + _topicUtf8.Length
            + 1 + CodedOutputStream.ComputeInt32Size(partition)
            + 1 + CodedOutputStream.ComputeInt64Size(offset)
            + (index == 0 ? 0 : 1 + CodedOutputStream.ComputeInt32Size(index));
        int most = 1 + 5 + entity.Length + 1 + 5 + source + 5 + 11 + 11 + 11 + 1 + 5 + watermark.Length + 1 + 5 + features.Length * 4;
        if (_protobuf.Length < most)
        {
            _protobuf = new byte[Math.Max(most, _protobuf.Length * 2)];
        }
        var span = _protobuf.AsSpan();
        int at = 0;
        at = LengthDelimited(span, at, EntityTag, entity);
        span[at++] = SourceTag;
        at = Varint(span, at, (ulong)source);
        at = LengthDelimited(span, at, SourceTopicTag, _topicUtf8);
        at = Field(span, at, SourcePartitionTag, (ulong)(long)partition);
        at = Field(span, at, SourceOffsetTag, (ulong)offset);
        if (index != 0)
        {
            at = Field(span, at, SourceIndexTag, (ulong)(long)index);
        }
        span[at++] = ScoreTag;
        BinaryPrimitives.WriteSingleLittleEndian(span[at..], score);
        at += 4;
        at = Field(span, at, ModelVersionTag, (ulong)modelVersion);
        at = Field(span, at, EventTimeTag, (ulong)eventTimeMs);
        if (!watermark.IsEmpty)
        {
            at = LengthDelimited(span, at, WatermarkTag, watermark);
        }
        if (!features.IsEmpty)
        {
            span[at++] = FeaturesTag;
            at = Varint(span, at, (ulong)(features.Length * 4));
            foreach (float value in features)
            {
                BinaryPrimitives.WriteSingleLittleEndian(span[at..], value);
                at += 4;
            }
        }
        at = Field(span, at, AppliedOffsetTag, (ulong)appliedOffset);
        return span[..at];
    }

    private static int LengthDelimited(Span<byte> span, int at, byte tag, ReadOnlySpan<byte> value)
    {
        span[at++] = tag;
        at = Varint(span, at, (ulong)value.Length);
        value.CopyTo(span[at..]);
        return at + value.Length;
    }

    private static int Field(Span<byte> span, int at, byte tag, ulong value)
    {
        span[at++] = tag;
        return Varint(span, at, value);
    }

    private static int Varint(Span<byte> span, int at, ulong value)
    {
        while (value >= 0x80)
        {
            span[at++] = (byte)(value | 0x80);
            value >>= 7;
        }
        span[at++] = (byte)value;
        return at;
    }
}

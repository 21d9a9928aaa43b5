namespace Inference.Engine.Kafka;

/// <summary>How a Kafka message carries events: per topic in configuration, or per message by its <c>content-type</c> header.</summary>
public enum EventFormat
{
    /// <summary>One JSON object per message (<c>application/json</c>).</summary>
    Json,

    /// <summary>One <c>inference.v1.Event</c> per message (<c>application/x-protobuf</c>).</summary>
    Protobuf,

    /// <summary>One <c>inference.v1.EventBatch</c> per message (<c>application/x-protobuf; messageType=inference.v1.EventBatch</c>).</summary>
    ProtobufBatch,

    /// <summary>An Arrow IPC stream of record batches per message (<c>application/vnd.apache.arrow.stream</c>).</summary>
    Arrow,

    /// <summary>A content type the engine does not read: the message is set aside.</summary>
    Unknown,
}

/// <summary>Content types of the event formats, as producers set them in a message's <c>content-type</c> header.</summary>
internal static class EventContentTypes
{
    public const string Json = "application/json";
    public const string Protobuf = "application/x-protobuf";
    public const string ProtobufBatch = "application/x-protobuf; messageType=inference.v1.EventBatch";
    public const string Arrow = "application/vnd.apache.arrow.stream";

    /// <summary>The format a content-type header names (media type parameters other than messageType are ignored).</summary>
    public static EventFormat Parse(ReadOnlySpan<byte> contentType)
    {
        contentType = contentType.Trim((byte)' ');
        if (StartsWith(contentType, "application/json"u8))
        {
            return EventFormat.Json;
        }
        if (StartsWith(contentType, "application/x-protobuf"u8) || StartsWith(contentType, "application/protobuf"u8))
        {
            return contentType.IndexOf("EventBatch"u8) >= 0 ? EventFormat.ProtobufBatch : EventFormat.Protobuf;
        }
        if (StartsWith(contentType, "application/vnd.apache.arrow.stream"u8))
        {
            return EventFormat.Arrow;
        }
        return EventFormat.Unknown;
    }

    private static bool StartsWith(ReadOnlySpan<byte> value, ReadOnlySpan<byte> prefix) =>
        value.Length >= prefix.Length && System.Text.Ascii.EqualsIgnoreCase(value[..prefix.Length], prefix);
}

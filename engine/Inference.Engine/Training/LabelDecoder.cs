using System.Text.Json;
using Inference.Engine.Ingest;

namespace Inference.Engine.Training;

/// <summary>One decoded label.</summary>
internal struct Label
{
    public ulong Entity;
    public long TimeMs;
    public float Value;
}

/// <summary>
/// Decodes <c>{"entity": "&lt;key&gt;", "ts": &lt;epoch ms&gt;, "label": 0|1|true|false, "request_id": "...",
/// "request_features": [..]}</c>. The label may be any number in [0, 1] (a soft label);
/// <c>request_id</c> is accepted and not used yet; request features, when the model takes them, are
/// written to the span given (missing ones read as 0).
/// </summary>
internal static class LabelDecoder
{
    public static bool TryDecode(ReadOnlySpan<byte> json, Span<float> requestFeatures, out Label label)
    {
        label = default;
        requestFeatures.Clear();
        bool hasEntity = false, hasTime = false, hasLabel = false;
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return false;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("entity"u8))
                {
                    reader.Read();
                    if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.Number) || !JsonEventDecoder.TryHashKey(ref reader, out label.Entity))
                    {
                        return false;
                    }
                    hasEntity = true;
                }
                else if (reader.ValueTextEquals("ts"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out label.TimeMs) || label.TimeMs < 0)
                    {
                        return false;
                    }
                    hasTime = true;
                }
                else if (reader.ValueTextEquals("label"u8))
                {
                    reader.Read();
                    if (reader.TokenType is JsonTokenType.True or JsonTokenType.False)
                    {
                        label.Value = reader.TokenType == JsonTokenType.True ? 1f : 0f;
                    }
                    else if (reader.TokenType != JsonTokenType.Number || !reader.TryGetSingle(out label.Value) || !(label.Value is >= 0f and <= 1f))
                    {
                        return false;
                    }
                    hasLabel = true;
                }
                else if (reader.ValueTextEquals("request_features"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartArray)
                    {
                        return false;
                    }
                    int index = 0;
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (reader.TokenType != JsonTokenType.Number || !reader.TryGetSingle(out float value) || !float.IsFinite(value) || index >= requestFeatures.Length)
                        {
                            return false;
                        }
                        requestFeatures[index++] = value;
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            return false;
        }
        return hasEntity && hasTime && hasLabel;
    }
}

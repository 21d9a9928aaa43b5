using System.Text;
using System.Text.Json;
using Inference.Engine.Features;
using Inference.Engine.Ingest;

namespace Inference.Engine.Training;

/// <summary>One decoded label.</summary>
internal struct Label
{
    public ulong Entity;
    public long TimeMs;
    public float Value;

    /// <summary>The hash of the request id the label names (as entity keys are hashed); 0 for none.</summary>
    public ulong Request;
}

/// <summary>
/// Decodes <c>{"entity": "&lt;key&gt;", "ts": &lt;epoch ms&gt;, "label": 0|1|true|false, "request_id": "...",
/// "request_features": [..]}</c>. The label may be any number in [0, 1] (a soft label);
/// <c>request_id</c> (a string or an integer) joins the label with what Score served under it (the feature log);
/// request features, when the model takes them, are
/// written to the span given (missing ones read as 0). A model over ids reads each id input of source
/// <c>Request</c> from the field of its name (a string or an integer, as entity keys are read); a label
/// without one of them is malformed.
/// </summary>
internal static class LabelDecoder
{
    public static bool TryDecode(ReadOnlySpan<byte> json, Span<float> requestFeatures, out Label label) =>
        TryDecode(json, requestFeatures, out label, null, []);

    public static bool TryDecode(ReadOnlySpan<byte> json, Span<float> requestFeatures, out Label label, LabelIdFields? idFields, Span<ulong> ids)
    {
        label = default;
        requestFeatures.Clear();
        bool hasEntity = false, hasTime = false, hasLabel = false;
        ulong idsFound = 0;
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
                else if (reader.ValueTextEquals("request_id"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Null)
                    {
                        continue;
                    }
                    if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.Number))
                    {
                        return false;
                    }
                    // False for an empty request id, which names no request (Request stays 0).
                    _ = JsonEventDecoder.TryHashKey(ref reader, out label.Request);
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
                else if (idFields?.Find(ref reader) is int input)
                {
                    reader.Read();
                    if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.Number) || !JsonEventDecoder.TryHashKey(ref reader, out ids[input]))
                    {
                        return false;
                    }
                    idsFound |= 1UL << input;
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
        if (!(hasEntity && hasTime && hasLabel))
        {
            return false;
        }
        return idFields is null || idFields.Complete(idsFound, label.Entity, ids);
    }
}

/// <summary>
/// The id inputs a label brings: those of source <c>Request</c> by field name, the <c>Entity</c> ones from its
/// entity; those of source <c>LastOf</c> are read from the entity's state with its features.
/// </summary>
internal sealed class LabelIdFields
{
    /// <summary>Id inputs a model may declare (a bit each in a mask).</summary>
    public const int MaxInputs = 64;

    private readonly byte[]?[] _fields;
    private readonly bool[] _entity;
    private readonly ulong _required;

    public LabelIdFields(IReadOnlyList<IdInputOptions> inputs)
    {
        _entity = [.. inputs.Select(input => input.Source == IdSource.Entity)];
        _fields = [.. inputs.Select(input => input.Source == IdSource.Request ? Encoding.UTF8.GetBytes(input.Name) : null)];
        for (int i = 0; i < _fields.Length; i++)
        {
            _required |= _fields[i] is null ? 0 : 1UL << i;
        }
    }

    public int Count => _fields.Length;

    /// <summary>The id input the property under the reader names, or null.</summary>
    public int? Find(ref Utf8JsonReader reader)
    {
        for (int i = 0; i < _fields.Length; i++)
        {
            if (_fields[i] is { } field && reader.ValueTextEquals(field))
            {
                return i;
            }
        }
        return null;
    }

    /// <summary>Fills in the entity's ids; false when a field the model reads was missing.</summary>
    public bool Complete(ulong found, ulong entity, Span<ulong> ids)
    {
        if ((found & _required) != _required)
        {
            return false;
        }
        for (int i = 0; i < _fields.Length; i++)
        {
            if (_entity[i])
            {
                ids[i] = entity;
            }
        }
        return true;
    }
}

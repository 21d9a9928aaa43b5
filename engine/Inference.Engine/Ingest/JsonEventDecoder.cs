using System.Buffers;
using System.Text;
using System.Text.Json;
using Inference.Kernels.Features;

namespace Inference.Engine.Ingest;

/// <summary>
/// Decodes <c>{"entity": "&lt;key&gt;", "ts": &lt;epoch ms&gt;, "&lt;field&gt;": &lt;number&gt;, ...}</c> in place into
/// a <see cref="MicroBatch"/> row. Unknown properties are ignored; every numeric field the features
/// use must be a number, every key field a string or number (hashed like entity keys). A numeric key
/// is taken by its JSON text, so 42 and "42" name the same entity.
/// </summary>
internal sealed partial class JsonEventDecoder
{
    private static readonly byte[] EntityName = "entity"u8.ToArray();
    private static readonly byte[] TimeName = "ts"u8.ToArray();
    private readonly byte[][] _fieldNames;
    private readonly byte[][] _keyNames;

    public JsonEventDecoder(IReadOnlyList<string> fields, IReadOnlyList<string>? keyFields = null)
    {
        _fieldNames = new byte[fields.Count][];
        for (int i = 0; i < fields.Count; i++)
        {
            _fieldNames[i] = Encoding.UTF8.GetBytes(fields[i]);
        }
        keyFields ??= [];
        _keyNames = new byte[keyFields.Count][];
        for (int i = 0; i < keyFields.Count; i++)
        {
            _keyNames[i] = Encoding.UTF8.GetBytes(keyFields[i]);
        }
    }

    /// <summary>Events dated after this (epoch ms) are refused as <see cref="DecodeError.FutureTimestamp"/>; set by the ingest stage from the wall clock.</summary>
    public long MaxTimeMs { get; set; } = long.MaxValue;

    /// <summary>Decodes one event into the batch's next row and commits it; on error the batch is unchanged.</summary>
    public DecodeError TryDecode(ReadOnlySpan<byte> json, MicroBatch batch)
    {
        if (batch.IsFull)
        {
            throw new InvalidOperationException("The micro-batch is full.");
        }
        return TryDecodeFlat(json, batch) ? DecodeError.None : DecodeWithReader(json, batch);
    }

    /// <summary>
    /// The decoder's reference: every event through <see cref="Utf8JsonReader"/>, whatever its shape; the
    /// flat fast path leaves it every event it does not accept, and every refusal.
    /// </summary>
    internal DecodeError DecodeWithReader(ReadOnlySpan<byte> json, MicroBatch batch)
    {
        int row = batch.NextRow;
        int capacity = batch.Capacity;
        var values = batch.Values;
        var keys = batch.Keys;
        ulong entity = 0;
        bool hasEntity = false, hasTime = false;
        long time = 0;
        // One bit per configured field seen (fields beyond 64 are checked by count).
        ulong seen = 0;
        int seenCount = 0;

        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return DecodeError.BadJson;
            }
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.EndObject)
                {
                    break;
                }
                if (reader.TokenType != JsonTokenType.PropertyName)
                {
                    return DecodeError.BadJson;
                }
                if (reader.ValueTextEquals(EntityName))
                {
                    reader.Read();
                    if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.Number))
                    {
                        return DecodeError.MissingEntity;
                    }
                    if (!TryHashKey(ref reader, out entity))
                    {
                        return DecodeError.MissingEntity;
                    }
                    hasEntity = true;
                    continue;
                }
                if (reader.ValueTextEquals(TimeName))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.Number)
                    {
                        return DecodeError.BadTime;
                    }
                    if (!reader.TryGetInt64(out time) || time < 0)
                    {
                        return DecodeError.BadTime;
                    }
                    hasTime = true;
                    continue;
                }
                int key = Find(_keyNames, ref reader);
                if (key >= 0)
                {
                    reader.Read();
                    if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.Number) || !TryHashKey(ref reader, out keys[key * capacity + row]))
                    {
                        return DecodeError.BadKeyField;
                    }
                    seenCount += DecodeErrors.Mark(ref seen, _fieldNames.Length + key);
                    continue;
                }
                int field = Find(_fieldNames, ref reader);
                reader.Read();
                if (field < 0)
                {
                    reader.Skip();
                    continue;
                }
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetDouble(out double value) || !float.IsFinite((float)value))
                {
                    return DecodeError.NonNumericField;
                }
                values[field * capacity + row] = (float)value;
                seenCount += DecodeErrors.Mark(ref seen, field);
            }
            // Trailing content after the object is not an event.
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                return DecodeError.BadJson;
            }
        }
        catch (JsonException)
        {
            return DecodeError.BadJson;
        }

        if (!hasEntity)
        {
            return DecodeError.MissingEntity;
        }
        if (!hasTime)
        {
            return DecodeError.MissingTime;
        }
        if (time > MaxTimeMs)
        {
            return DecodeError.FutureTimestamp;
        }
        if (seenCount < _fieldNames.Length + _keyNames.Length)
        {
            return DecodeError.MissingField;
        }
        batch.Entities[row] = entity;
        batch.Times[row] = time;
        batch.Commit();
        return DecodeError.None;
    }

    private static int Find(byte[][] names, ref Utf8JsonReader reader)
    {
        for (int i = 0; i < names.Length; i++)
        {
            if (reader.ValueTextEquals(names[i]))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>Hashes the key's unescaped UTF-8 text; an empty key is no key.</summary>
    internal static bool TryHashKey(ref Utf8JsonReader reader, out ulong hash)
    {
        hash = 0;
        if (!reader.ValueIsEscaped && !reader.HasValueSequence)
        {
            if (reader.ValueSpan.IsEmpty)
            {
                return false;
            }
            hash = EntityKey.Hash(reader.ValueSpan);
            return true;
        }
        int max = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        byte[]? rented = max > 256 ? ArrayPool<byte>.Shared.Rent(max) : null;
        Span<byte> buffer = rented ?? stackalloc byte[256];
        try
        {
            int length = reader.CopyString(buffer);
            if (length == 0)
            {
                return false;
            }
            hash = EntityKey.Hash(buffer[..length]);
            return true;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }
}

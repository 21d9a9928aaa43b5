using System.Buffers;
using System.Buffers.Text;
using Inference.Kernels.Features;

namespace Inference.Engine.Ingest;

/// <summary>
/// The decoder's fast path: a single forward scan of the shape nearly every event has, a flat object of
/// ASCII names, unescaped ASCII strings, numbers and literals. It commits a row only when the event is
/// well formed and complete; anything else (an escape, a non-ASCII byte, a nested value, a number it
/// cannot read exactly, any error) is left to <see cref="DecodeWithReader"/>, which decides. So both paths
/// accept the same events, write the same bits, and refuse with the same reasons.
/// </summary>
internal sealed partial class JsonEventDecoder
{
    // Where a string may stop being plain: its closing quote, an escape, a control character or a byte outside ASCII.
    private static readonly SearchValues<byte> StringStops = SearchValues.Create(StringStopBytes());

    // 10^0 … 10^22: every one a double exactly, so a product or quotient with an exact mantissa is rounded once.
    private static readonly double[] ExactPowers =
    [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];

    /// <summary>Decodes <paramref name="json"/> into the batch's next row and commits it, or returns false having committed nothing.</summary>
    internal bool TryDecodeFlat(ReadOnlySpan<byte> json, MicroBatch batch)
    {
        int row = batch.NextRow;
        int capacity = batch.Capacity;
        ulong entity = 0, seen = 0;
        long time = 0;
        bool hasEntity = false, hasTime = false;
        int seenCount = 0;
        int at = SkipSpace(json, 0);
        if (at >= json.Length || json[at] != (byte)'{')
        {
            return false;
        }
        // An empty object, like any property not opening with a plain name, is left to the reader (TryString refuses it).
        at = SkipSpace(json, at + 1);
        while (true)
        {
            if (!TryString(json, ref at, out var name))
            {
                return false;
            }
            at = SkipSpace(json, at);
            if (at >= json.Length || json[at] != (byte)':')
            {
                return false;
            }
            at = SkipSpace(json, at + 1);
            if (at >= json.Length)
            {
                return false;
            }
            if (name.SequenceEqual(EntityName))
            {
                if (!TryKey(json, ref at, out entity))
                {
                    return false;
                }
                hasEntity = true;
            }
            else if (name.SequenceEqual(TimeName))
            {
                if (!TryTime(json, ref at, out time))
                {
                    return false;
                }
                hasTime = true;
            }
            else if (DecodeErrors.FieldIndex(_keyNames, name) is int key and >= 0)
            {
                if (!TryKey(json, ref at, out batch.Keys[key * capacity + row]))
                {
                    return false;
                }
                seenCount += DecodeErrors.Mark(ref seen, _fieldNames.Length + key);
            }
            else if (DecodeErrors.FieldIndex(_fieldNames, name) is int field and >= 0)
            {
                if (!TryNumber(json, ref at, out double value) || !float.IsFinite((float)value))
                {
                    return false;
                }
                batch.Values[field * capacity + row] = (float)value;
                seenCount += DecodeErrors.Mark(ref seen, field);
            }
            else if (!TrySkipValue(json, ref at))
            {
                return false;
            }
            at = SkipSpace(json, at);
            if (at >= json.Length)
            {
                return false;
            }
            if (json[at] == (byte)'}')
            {
                break;
            }
            if (json[at] != (byte)',')
            {
                return false;
            }
            at = SkipSpace(json, at + 1);
        }
        if (SkipSpace(json, at + 1) != json.Length || !hasEntity || !hasTime || time > MaxTimeMs
            || seenCount < _fieldNames.Length + _keyNames.Length)
        {
            return false;
        }
        batch.Entities[row] = entity;
        batch.Times[row] = time;
        batch.Commit();
        return true;
    }

    private static int SkipSpace(ReadOnlySpan<byte> json, int at)
    {
        while (at < json.Length && IsSpace(json[at]))
        {
            at++;
        }
        return at;
    }

    private static bool IsSpace(byte b) => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t';

    /// <summary>Whether a number or literal may end where <paramref name="at"/> is: the input's end, a separator or space.</summary>
    private static bool EndsValue(ReadOnlySpan<byte> json, int at) => at == json.Length || json[at] is (byte)',' or (byte)'}' || IsSpace(json[at]);

    /// <summary>A plain string at <paramref name="at"/> (its text, quotes excluded); <paramref name="at"/> moves past it.</summary>
    private static bool TryString(ReadOnlySpan<byte> json, scoped ref int at, out ReadOnlySpan<byte> text)
    {
        text = default;
        if (at >= json.Length || json[at] != (byte)'"')
        {
            return false;
        }
        var rest = json[(at + 1)..];
        int stop = rest.IndexOfAny(StringStops);
        if (stop < 0 || rest[stop] != (byte)'"')
        {
            return false;
        }
        text = rest[..stop];
        at += stop + 2;
        return true;
    }

    /// <summary>A key, string or number, hashed by its text as the reader's path does; an empty key is left to it.</summary>
    private static bool TryKey(ReadOnlySpan<byte> json, ref int at, out ulong hash)
    {
        hash = 0;
        int start = at;
        ReadOnlySpan<byte> text;
        if (json[at] == (byte)'"')
        {
            if (!TryString(json, ref at, out text))
            {
                return false;
            }
        }
        else if (TryNumberText(json, ref at, out _, out _, out _))
        {
            text = json[start..at];
        }
        else
        {
            return false;
        }
        if (text.IsEmpty)
        {
            return false;
        }
        hash = EntityKey.Hash(text);
        return true;
    }

    /// <summary>An event time: a non-negative integer of at most 18 digits (anything else is left to the reader's path).</summary>
    private static bool TryTime(ReadOnlySpan<byte> json, ref int at, out long time)
    {
        time = 0;
        int start = at;
        if (!TryNumberText(json, ref at, out _, out int fraction, out int exponent) || json[start] == (byte)'-'
            || fraction >= 0 || exponent >= 0 || at - start > 18)
        {
            return false;
        }
        for (int i = start; i < at; i++)
        {
            time = time * 10 + (json[i] - '0');
        }
        return true;
    }

    /// <summary>
    /// A number's value, exact where its significant digits fit 15 and its power of ten 22 (one rounding);
    /// other numbers through <see cref="Utf8Parser"/>, as the reader parses them.
    /// </summary>
    internal static bool TryNumber(ReadOnlySpan<byte> json, ref int at, out double value)
    {
        value = 0;
        int start = at;
        if (!TryNumberText(json, ref at, out int digitsEnd, out int fraction, out int exponent))
        {
            return false;
        }
        var text = json[start..at];
        if (exponent < 0)
        {
            int first = json[start] == (byte)'-' ? start + 1 : start;
            long mantissa = 0;
            int significant = 0;
            for (int i = first; i < digitsEnd; i++)
            {
                if (i == fraction)
                {
                    continue;
                }
                mantissa = mantissa * 10 + (json[i] - '0');
                if (mantissa != 0 && ++significant > 15)
                {
                    break;
                }
            }
            int scale = fraction >= 0 ? digitsEnd - fraction - 1 : 0;
            if (significant <= 15 && scale < ExactPowers.Length)
            {
                value = mantissa / ExactPowers[scale];
                value = json[start] == (byte)'-' ? -value : value;
                return true;
            }
        }
        // As the reader: the exponent format where the text has an exponent.
        return Utf8Parser.TryParse(text, out value, out int consumed, exponent >= 0 ? 'e' : default) && consumed == text.Length;
    }

    /// <summary>
    /// JSON's number grammar, <c>-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?</c>, followed by a delimiter:
    /// where the digits end, and the positions of the decimal point and the exponent's letter (-1 when absent).
    /// </summary>
    private static bool TryNumberText(ReadOnlySpan<byte> json, ref int at, out int digitsEnd, out int fraction, out int exponent)
    {
        fraction = exponent = -1;
        int i = at;
        if (i < json.Length && json[i] == (byte)'-')
        {
            i++;
        }
        int integer = i;
        while (i < json.Length && char.IsAsciiDigit((char)json[i]))
        {
            i++;
        }
        if (i == integer || (json[integer] == (byte)'0' && i - integer > 1))
        {
            digitsEnd = i;
            return false;
        }
        if (i < json.Length && json[i] == (byte)'.')
        {
            fraction = i++;
            int digits = i;
            while (i < json.Length && char.IsAsciiDigit((char)json[i]))
            {
                i++;
            }
            if (i == digits)
            {
                digitsEnd = i;
                return false;
            }
        }
        digitsEnd = i;
        if (i < json.Length && json[i] is (byte)'e' or (byte)'E')
        {
            exponent = i++;
            if (i < json.Length && json[i] is (byte)'+' or (byte)'-')
            {
                i++;
            }
            int digits = i;
            while (i < json.Length && char.IsAsciiDigit((char)json[i]))
            {
                i++;
            }
            if (i == digits)
            {
                return false;
            }
        }
        if (!EndsValue(json, i))
        {
            return false;
        }
        at = i;
        return true;
    }

    /// <summary>Skips an unknown property's value: a plain string, a number or a literal (objects and arrays are left to the reader's path).</summary>
    private static bool TrySkipValue(ReadOnlySpan<byte> json, ref int at)
    {
        var rest = json[at..];
        int length = rest[0] switch
        {
            (byte)'t' when rest.StartsWith("true"u8) => 4,
            (byte)'f' when rest.StartsWith("false"u8) => 5,
            (byte)'n' when rest.StartsWith("null"u8) => 4,
            _ => 0,
        };
        if (length > 0)
        {
            if (!EndsValue(json, at + length))
            {
                return false;
            }
            at += length;
            return true;
        }
        return rest[0] == (byte)'"' ? TryString(json, ref at, out _) : TryNumberText(json, ref at, out _, out _, out _);
    }

    private static byte[] StringStopBytes()
    {
        var stops = new List<byte> { (byte)'"', (byte)'\\' };
        for (int b = 0; b < 0x20; b++)
        {
            stops.Add((byte)b);
        }
        for (int b = 0x80; b < 0x100; b++)
        {
            stops.Add((byte)b);
        }
        return [.. stops];
    }
}

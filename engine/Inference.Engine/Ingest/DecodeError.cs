namespace Inference.Engine.Ingest;

/// <summary>Why an event was set aside.</summary>
public enum DecodeError
{
    None,
    BadJson,
    MissingEntity,
    MissingTime,
    BadTime,
    MissingField,
    NonNumericField,
    BadKeyField,
    BadProtobuf,
    BadArrow,
    ArrowMissingColumn,
    ArrowColumnType,
    ArrowNulls,
    UnknownContentType,
    BadLabel,
    FutureTimestamp,
}

/// <summary>The reasons messages are set aside with, and what every decoder checks the same way.</summary>
internal static class DecodeErrors
{
    /// <summary>The reason as written to the dead-letter header <c>inference.error</c> and the metrics, e.g. "missing_field".</summary>
    public static string Describe(this DecodeError error) => error switch
    {
        DecodeError.BadJson => "bad_json",
        DecodeError.MissingEntity => "missing_entity",
        DecodeError.MissingTime => "missing_ts",
        DecodeError.BadTime => "bad_ts",
        DecodeError.MissingField => "missing_field",
        DecodeError.NonNumericField => "non_numeric_field",
        DecodeError.BadKeyField => "bad_key_field",
        DecodeError.BadProtobuf => "bad_protobuf",
        DecodeError.BadArrow => "bad_arrow",
        DecodeError.ArrowMissingColumn => "arrow_missing_column",
        DecodeError.ArrowColumnType => "arrow_column_type",
        DecodeError.ArrowNulls => "arrow_nulls",
        DecodeError.UnknownContentType => "unknown_content_type",
        DecodeError.BadLabel => "bad_label",
        DecodeError.FutureTimestamp => "future_timestamp",
        _ => "none",
    };

    /// <summary>The position of <paramref name="name"/> (UTF-8, unescaped) among a decoder's field names, or -1.</summary>
    internal static int FieldIndex(byte[][] names, ReadOnlySpan<byte> name)
    {
        for (int i = 0; i < names.Length; i++)
        {
            if (name.SequenceEqual(names[i]))
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>Marks field <paramref name="index"/> seen; returns 1 the first time (fields beyond 64 count every time).</summary>
    internal static int Mark(ref ulong seen, int index)
    {
        if (index >= 64)
        {
            return 1;
        }
        ulong bit = 1UL << index;
        if ((seen & bit) != 0)
        {
            return 0;
        }
        seen |= bit;
        return 1;
    }
}

using System.Globalization;
using System.Text;
using Inference.Engine.Ingest;

namespace Inference.Engine.Tests;

/// <summary>
/// The JSON decoder's fast path against its reader path, event by event: the same rows, bit for bit, and
/// the same refusals, over generated events of every shape (plain, spaced, escaped, nested, malformed,
/// numbers written every way JSON allows and many ways it does not).
/// </summary>
public sealed class JsonEventDecoderFlatTests
{
    private static readonly string[] Fields = ["amount", "items"];
    private static readonly string[] KeyFields = ["merchant"];

    [Fact]
    public void The_fast_path_takes_the_common_shape()
    {
        using var batch = new MicroBatch(Fields, 4, KeyFields);
        var decoder = new JsonEventDecoder(Fields, KeyFields);
        Assert.True(decoder.TryDecodeFlat("{\"entity\":\"user-000042\",\"ts\":1767225600123,\"amount\":52.17,\"items\":3,\"merchant\":\"m-1\"}"u8, batch));
        Assert.True(decoder.TryDecodeFlat(" { \"merchant\" : 7 ,\"items\":-0.5e-3, \"note\":\"x\", \"ok\":true, \"amount\":1E2, \"ts\":0, \"entity\":42 } "u8, batch));
        Assert.Equal(2, batch.Count);
        Assert.Equal(52.17f, batch.Values[0]);
        Assert.Equal(100f, batch.Values[1]);
        Assert.Equal(-0.0005f, batch.Values[4 + 1]);
    }

    [Fact]
    public void Generated_events_decode_as_the_reader_decodes_them()
    {
        var random = new Random(20261208);
        int flat = 0, accepted = 0;
        const int Events = 20_000;
        for (int n = 0; n < Events; n++)
        {
            byte[] json = Encoding.UTF8.GetBytes(Event(random));
            if (random.Next(20) == 0)
            {
                json = json[..random.Next(json.Length + 1)];
            }
            using var fast = new MicroBatch(Fields, 1, KeyFields);
            using var reference = new MicroBatch(Fields, 1, KeyFields);
            var decoder = new JsonEventDecoder(Fields, KeyFields) { MaxTimeMs = 1L << 50 };
            using (var probe = new MicroBatch(Fields, 1, KeyFields))
            {
                flat += decoder.TryDecodeFlat(json, probe) ? 1 : 0;
            }
            var error = decoder.TryDecode(json, fast);
            var expected = decoder.DecodeWithReader(json, reference);
            string text = Encoding.UTF8.GetString(json);
            Assert.True(expected == error, $"{text}: {error}, the reader says {expected}");
            Assert.Equal(reference.Count, fast.Count);
            if (error != DecodeError.None)
            {
                continue;
            }
            accepted++;
            Assert.True(reference.Entities[0] == fast.Entities[0], text);
            Assert.True(reference.Times[0] == fast.Times[0], text);
            Assert.True(reference.Keys[0] == fast.Keys[0], text);
            for (int f = 0; f < Fields.Length; f++)
            {
                Assert.True(BitConverter.SingleToInt32Bits(reference.Values[f]) == BitConverter.SingleToInt32Bits(fast.Values[f]),
                    $"{text}: {Fields[f]} {fast.Values[f]:R}, the reader says {reference.Values[f]:R}");
            }
        }
        // Both paths are exercised: most generated events are accepted, most of those by the fast path.
        Assert.InRange(accepted, Events / 4, Events);
        Assert.InRange(flat, accepted / 2, accepted);
    }

    [Fact]
    public void Numbers_read_as_the_runtime_parses_them_to_the_bit()
    {
        var random = new Random(7);
        for (int n = 0; n < 100_000; n++)
        {
            string text = Number(random);
            byte[] json = Encoding.UTF8.GetBytes(text + ",");
            int at = 0;
            if (!JsonEventDecoder.TryNumber(json, ref at, out double value))
            {
                continue;
            }
            Assert.Equal(text.Length, at);
            double expected = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(value), $"{text}: {value:R}, the runtime says {expected:R}");
        }
    }

    private static string Event(Random random)
    {
        var members = new List<string>
        {
            Member(random, "entity", Key(random)),
            Member(random, "ts", Time(random)),
            Member(random, "amount", Number(random)),
            Member(random, "items", Number(random)),
            Member(random, "merchant", Key(random)),
        };
        for (int extra = random.Next(3); extra > 0; extra--)
        {
            members.Insert(random.Next(members.Count + 1), Member(random, Pick(random, "note", "tags", "n\\u0061me", "é"), Other(random)));
        }
        if (random.Next(12) == 0)
        {
            members.RemoveAt(random.Next(members.Count));
        }
        if (random.Next(12) == 0)
        {
            members.Add(members[random.Next(members.Count)]);
        }
        string body = string.Join(Pick(random, ",", ",", ", ", ",\n", " ,"), members);
        return Pick(random, "", "", " ", "\t", "\r\n") + "{" + Space(random) + body + Space(random) + "}"
            + (random.Next(20) == 0 ? Pick(random, " x", "}", ",", "{}") : Pick(random, "", "", " ", "\n"));
    }

    private static string Member(Random random, string name, string value) => $"\"{name}\"{Space(random)}:{Space(random)}{value}";

    private static string Space(Random random) => Pick(random, "", "", "", " ", "  ", "\n\t");

    private static string Key(Random random) => random.Next(10) switch
    {
        0 => random.Next(1000).ToString(CultureInfo.InvariantCulture),
        1 when random.Next(2) == 0 => Pick(random, "\"\"", "null", "true", "\"u\\u0031\"", "\"é-1\"", "\"a\\\"b\"", "-7", "1.5e2", "[1]", "{}"),
        _ => $"\"user-{random.Next(100000):D6}\"",
    };

    private static string Time(Random random) => random.Next(12) switch
    {
        0 => Pick(random, "-1", "-0", "0", "1.5", "1e3", "017", "\"17\"", "9223372036854775807", "9223372036854775808", "123456789012345678"),
        1 => (1L << 51).ToString(CultureInfo.InvariantCulture),
        _ => (1_767_225_600_000L + random.Next(1_000_000)).ToString(CultureInfo.InvariantCulture),
    };

    private static string Number(Random random)
    {
        double value = random.Next(4) switch
        {
            0 => Math.Round(random.NextDouble() * 500, 2),
            1 => random.Next(-1000, 1000),
            2 => (random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-30, 40)),
            _ => BitConverter.Int64BitsToDouble(random.NextInt64()),
        };
        string format = Pick(random, "R", "R", "G17", "E3", "e12", "F2", "F0", "0.##############################");
        string text = value.ToString(format, CultureInfo.InvariantCulture);
        return random.Next(25) switch
        {
            0 => Pick(random, "01", "1.", ".5", "-", "+1", "1e", "1e+", "1E-5", "0.0000000000000000000001", "1e39", "1e400", "-0",
                "0.1234567890123456789", "123456789012345678901234567890", "NaN", "Infinity", "\"3\"", "null", "1x", "- 1"),
            1 => text + "0000000000",
            _ => text,
        };
    }

    private static string Other(Random random) => Pick(random, "\"x\"", "\"\"", "3", "-2.5e-7", "true", "false", "null", "tru", "nul",
        "[1,2]", "{\"a\":{\"b\":[]}}", "\"line\\nbreak\"", "\"ü\"", "\"tab\tinside\"", "[", "01");

    private static string Pick(Random random, params string[] choices) => choices[random.Next(choices.Length)];
}

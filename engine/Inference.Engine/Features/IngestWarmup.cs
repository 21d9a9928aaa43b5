using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Inference.Engine.Ingest;

namespace Inference.Engine.Features;

/// <summary>
/// Warms the ingest path before the first message: synthetic JSON events of the plan's fields are decoded
/// and applied to a scratch table (<see cref="DeviceExecutor.Warm"/>), so that a backlog is not consumed by
/// code still being compiled. Runs on the consumer's thread while its group join is under way; nothing of
/// it reaches the live state.
/// </summary>
internal static class IngestWarmup
{
    /// <summary>Events per round: enough distinct entities that some are alone in the batch and some share a slot.</summary>
    public const int Events = 1_024;

    /// <summary>Rounds of decode and apply (methods without loops are compiled optimised after a few calls).</summary>
    public const int Rounds = 4;

    /// <summary>Runs the warm-up; returns how long it took, or null when a synthetic event did not decode (a plan whose fields clash with <c>entity</c> or <c>ts</c>): then nothing is applied.</summary>
    public static TimeSpan? Run(DeviceExecutor executor, TimeProvider time)
    {
        long started = time.GetTimestamp();
        var plan = executor.Plan;
        var payloads = Payloads(plan.NumericFields, plan.KeyFields, time.GetUtcNow().ToUnixTimeMilliseconds());
        var decoder = new JsonEventDecoder(plan.NumericFields, plan.KeyFields);
        using var batch = new MicroBatch(plan.NumericFields, Events, plan.KeyFields);
        for (int round = 0; round < Rounds; round++)
        {
            batch.Clear();
            foreach (byte[] payload in payloads)
            {
                if (decoder.TryDecode(payload, batch) != DecodeError.None)
                {
                    return null;
                }
            }
        }
        executor.Warm(batch, Rounds);
        return time.GetElapsedTime(started);
    }

    /// <summary>
    /// One event per row over 3/4 as many entities (a quarter share their slot), times a minute apart within the
    /// last ten minutes, with some ties; every numeric field a number, every key field a string.
    /// </summary>
    private static byte[][] Payloads(IReadOnlyList<string> numeric, IReadOnlyList<string> keys, long nowMs)
    {
        long start = Math.Max(0, nowMs - 600_000);
        var payloads = new byte[Events][];
        var buffer = new ArrayBufferWriter<byte>();
        for (int i = 0; i < Events; i++)
        {
            buffer.ResetWrittenCount();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("entity", string.Create(CultureInfo.InvariantCulture, $"warm-up-{i % (3 * Events / 4)}"));
                json.WriteNumber("ts", start + (i / 2) * 60_000L % 600_000);
                foreach (string field in numeric)
                {
                    json.WriteNumber(field, i % 97 + 0.5);
                }
                foreach (string field in keys)
                {
                    json.WriteString(field, string.Create(CultureInfo.InvariantCulture, $"k{i % 7}"));
                }
                json.WriteEndObject();
            }
            payloads[i] = buffer.WrittenSpan.ToArray();
        }
        return payloads;
    }
}

using Apache.Arrow;
using Apache.Arrow.Ipc;
using Inference.Demo;
using Inference.Proto.V1;

namespace Inference.Testing;

/// <summary>Synthetic events in the engine's binary formats, as a producer would write them.</summary>
public static class EventEncodings
{
    /// <summary>One <c>inference.v1.Event</c>.</summary>
    public static Event Protobuf(SyntheticStream stream, SyntheticEvent e) =>
        new() { Entity = stream.Key(e.Entity), Ts = e.TimeMs, Values = { ["amount"] = e.Amount } };

    /// <summary>An Arrow IPC stream of one record batch: entity (utf8), ts (int64 epoch ms), amount (float64).</summary>
    public static byte[] Arrow(SyntheticStream stream, IReadOnlyList<SyntheticEvent> events)
    {
        var entities = new StringArray.Builder();
        var times = new Int64Array.Builder();
        var amounts = new DoubleArray.Builder();
        foreach (var e in events)
        {
            entities.Append(stream.Key(e.Entity));
            times.Append(e.TimeMs);
            amounts.Append(e.Amount);
        }
        var batch = new RecordBatch.Builder()
            .Append("entity", false, entities.Build())
            .Append("ts", false, times.Build())
            .Append("amount", false, amounts.Build())
            .Build();
        using var buffer = new MemoryStream();
        using (var writer = new ArrowStreamWriter(buffer, batch.Schema))
        {
            writer.WriteRecordBatch(batch);
            writer.WriteEnd();
        }
        return buffer.ToArray();
    }
}

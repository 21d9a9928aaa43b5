using System.Diagnostics;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Bench.Pipeline;

/// <summary>The engine's stages alone, in process, over the same events: what ingest adds on top of them.</summary>
internal static class StageBaselines
{
    /// <summary>Decoding every payload into micro-batches (cleared when full), no Kafka, no apply.</summary>
    public static double Decode(IReadOnlyList<byte[]> payloads, EventFormat format, int batchEvents)
    {
        var plan = new FeaturePlan(FeatureOptions.DefaultDefinitions());
        using var batch = new MicroBatch(plan.NumericFields, batchEvents, plan.KeyFields);
        long events = 0;
        var clock = Stopwatch.StartNew();
        DecodeAll(payloads, format, plan, batch, full =>
        {
            events += full.Count;
            full.Clear();
        });
        return events / clock.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// The feature table's own apply throughput: the same events, decoded beforehand into batches of
    /// <paramref name="batchEvents"/>, applied one after another on the engine's accelerator.
    /// </summary>
    public static double Apply(IReadOnlyList<byte[]> payloads, EventFormat format, int batchEvents, int entities, AcceleratorKind accelerator = AcceleratorKind.Auto)
    {
        var plan = new FeaturePlan(FeatureOptions.DefaultDefinitions());
        var batches = new List<ArrayBatch>();
        using (var batch = new MicroBatch(plan.NumericFields, batchEvents, plan.KeyFields))
        {
            DecodeAll(payloads, format, plan, batch, full =>
            {
                var numeric = new float[plan.NumericFields.Count][];
                for (int f = 0; f < numeric.Length; f++)
                {
                    numeric[f] = full.Values.Slice(f * full.Capacity, full.Count).ToArray();
                }
                var keys = new ulong[plan.KeyFields.Count][];
                for (int k = 0; k < keys.Length; k++)
                {
                    keys[k] = full.Keys.Slice(k * full.Capacity, full.Count).ToArray();
                }
                batches.Add(new ArrayBatch(full.Entities[..full.Count].ToArray(), full.Times[..full.Count].ToArray(), numeric, keys));
                full.Clear();
            });
        }
        using var device = DeviceContext.Create(accelerator);
        using var table = new FeatureTable(device, plan, new FeatureTableOptions
        {
            // Presized: steady-state apply, no growth inside the timed loop.
            InitialCapacity = 2 * entities,
            MaxCapacity = 2 * entities,
            MaxBatchEvents = batchEvents,
        });
        long events = 0;
        var clock = Stopwatch.StartNew();
        foreach (var batch in batches)
        {
            events += table.Apply(batch).Applied;
        }
        return events / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Decodes every payload into <paramref name="batch"/>, handing it to <paramref name="full"/> whenever it fills and once at the end.</summary>
    private static void DecodeAll(IReadOnlyList<byte[]> payloads, EventFormat format, FeaturePlan plan, MicroBatch batch, Action<MicroBatch> full)
    {
        var json = new JsonEventDecoder(plan.NumericFields, plan.KeyFields);
        var protobuf = new ProtobufEventDecoder(plan.NumericFields, plan.KeyFields);
        var arrow = new ArrowEventDecoder(plan.NumericFields, plan.KeyFields);
        foreach (var payload in payloads)
        {
            int resume = 0;
            do
            {
                if (batch.IsFull)
                {
                    full(batch);
                }
                var error = format switch
                {
                    EventFormat.Json => json.TryDecode(payload, batch),
                    EventFormat.Protobuf => protobuf.TryDecode(payload, batch),
                    EventFormat.ProtobufBatch => protobuf.DecodeBatch(payload, batch, ref resume),
                    _ => arrow.Decode(payload, batch, ref resume),
                };
                if (error != DecodeError.None)
                {
                    throw new InvalidOperationException($"The bench's own payload did not decode: {error.Describe()}.");
                }
            }
            while (resume != 0);
        }
        if (batch.Count > 0)
        {
            full(batch);
        }
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using Grpc.Net.Client;
using Inference.Bench.V1;
using Inference.Demo;
using Inference.Engine.Features;
using Inference.Engine.Hosting;
using Inference.Engine.Kafka;
using Google.Protobuf;
using Inference.Testing;
using Inference.Proto.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Bench.Pipeline;

/// <summary>
/// End-to-end harness: pre-produces a fixed number of events to the embedded broker, then measures
/// in one run, over the same topic, the engine's ingest rate next to a bare per-message consume loop
/// and librdkafka's batch consume, and gRPC Score latency at a fixed rate next to a no-op method on
/// the same server. Prints a markdown table.
/// </summary>
internal static class PipelineBench
{
    private const string Topic = "bench-events";

    public static async Task<int> RunAsync(long events, int partitions, int scoreRate, int scoreSeconds, int entities, EventFormat format)
    {
        const int ArrowRows = 1_024;

        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic(Topic, partitions);
        kafka.CreateTopic("bench-labels", 1);
        // Stay well inside the embedded broker's per-partition retention (~5 MiB, 100k produce batches).
        double payloadBytes = format switch { EventFormat.Json => 75, EventFormat.Protobuf => 45, _ => 30 };
        double perPartitionMiB = events * payloadBytes / partitions / (1 << 20);
        if (perPartitionMiB > 4)
        {
            Console.Error.WriteLine($"{events} events over {partitions} partitions is ~{perPartitionMiB:F1} MiB per partition: more than the embedded broker keeps. Use more partitions.");
            return 2;
        }

        var stream = new SyntheticStream(entities, seed: 1);
        var produceClock = Stopwatch.StartNew();
        var payloads = new List<byte[]>();
        var pending = new List<SyntheticEvent>(ArrowRows);
        using (var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = kafka.BootstrapServers, LingerMs = 50, BatchSize = 1 << 20, EnableIdempotence = true }).Build())
        {
            void Send(string key, byte[] payload)
            {
                payloads.Add(payload);
                producer.ProduceWaiting(Topic, new Message<string, byte[]> { Key = key, Value = payload });
            }
            for (long i = 0; i < events; i++)
            {
                var e = stream.NextEvent();
                switch (format)
                {
                    case EventFormat.Json:
                        Send(stream.Key(e.Entity), e.Json);
                        break;
                    case EventFormat.Protobuf:
                        Send(stream.Key(e.Entity), EventEncodings.Protobuf(stream, e).ToByteArray());
                        break;
                    default:
                        // Columnar producers: one Arrow stream of 1,024 events per message.
                        pending.Add(e);
                        if (pending.Count == ArrowRows || i == events - 1)
                        {
                            Send($"block-{i}", EventEncodings.Arrow(stream, pending));
                            pending.Clear();
                        }
                        break;
                }
            }
            producer.Flush(TimeSpan.FromMinutes(2));
        }
        // Each in-process baseline runs twice and reports the second run (the first is JIT warm-up).
        _ = StageBaselines.Decode(payloads, format, FeatureOptions.DefaultMaxBatchEvents);
        double decodeOnly = StageBaselines.Decode(payloads, format, FeatureOptions.DefaultMaxBatchEvents);
        Console.Error.WriteLine($"Decode only: {decodeOnly:N0} events/s.");
        _ = StageBaselines.Apply(payloads, format, FeatureOptions.DefaultMaxBatchEvents, entities);
        double applyOnly = StageBaselines.Apply(payloads, format, FeatureOptions.DefaultMaxBatchEvents, entities);
        Console.Error.WriteLine($"Apply only: {applyOnly:N0} events/s.");
        Console.Error.WriteLine($"Produced {events:N0} events over {partitions} partitions in {produceClock.Elapsed.TotalSeconds:F1} s.");

        // Kafka messages per event: the consume baselines count messages, and an Arrow message carries many events.
        long messages = payloads.Count;
        double eventsPerMessage = (double)events / messages;
        double perMessage = ConsumeBaselines.PerMessage(kafka.BootstrapServers, Topic, messages) * eventsPerMessage;
        Console.Error.WriteLine($"Per-message consume: {perMessage:N0} events/s.");
        double batch = ConsumeBaselines.Batch(kafka.BootstrapServers, Topic, messages) * eventsPerMessage;
        Console.Error.WriteLine($"Batch consume: {batch:N0} events/s.");

        var settings = new Dictionary<string, string?>
        {
            ["Inference:Role"] = "All",
            ["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers,
            ["Inference:Kafka:EventsTopic"] = Topic,
            ["Inference:Kafka:EventsFormat"] = format.ToString(),
            ["Inference:Kafka:LabelsTopic"] = "bench-labels",
            ["Inference:Kafka:DeadLetterTopic"] = "",
            ["Inference:Kafka:GroupId"] = $"bench-engine-{Guid.NewGuid():N}",
            ["Inference:Kafka:SessionTimeoutMs"] = "6000",
            ["Inference:Training:Enabled"] = "false",
            // Steady state: room for every entity from the start (no growth, no eviction churn in the timed window).
            ["Inference:Features:Capacity"] = (2 * Math.Max(entities, 1)).ToString(CultureInfo.InvariantCulture),
            ["Inference:Features:InitialCapacity"] = (2 * Math.Max(entities, 1)).ToString(CultureInfo.InvariantCulture),
            ["Inference:Serving:Port"] = "0",
            ["Inference:Serving:HttpPort"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        var app = InferenceApplication.Build([], settings);
        app.MapGrpcService<NoopGrpcService>();
        await app.StartAsync();
        var metrics = app.Services.GetRequiredService<InferenceMetrics>();
        var accelerator = app.Services.GetRequiredService<Engine.Features.FeatureStore>().AcceleratorDescription;
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (metrics.EventsApplied == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(1);
        }
        var featureMetrics = app.Services.GetRequiredService<Engine.Features.FeatureMetrics>();
        var ingestClock = Stopwatch.StartNew();
        long first = metrics.EventsApplied;
        double applySecondsBefore = featureMetrics.ApplySeconds;
        // Process-wide: everything the host allocates while it ingests (this loop's own waits included).
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
        while (metrics.EventsApplied < events && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5);
        }
        double ingest = (metrics.EventsApplied - first) / ingestClock.Elapsed.TotalSeconds;
        // The same batches' apply, timed inside the engine: what the table itself took.
        double applyInEngine = (metrics.EventsApplied - first) / (featureMetrics.ApplySeconds - applySecondsBefore);
        double bytesPerEvent = (GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore) / (double)(metrics.EventsApplied - first);
        Console.Error.WriteLine($"Allocated while ingesting: {bytesPerEvent:F2} B/event.");
        Console.Error.WriteLine($"Engine ingest: {ingest:N0} events/s ({metrics.EventsApplied:N0} applied, {metrics.BatchesApplied:N0} batches, {metrics.DataLossResets} data-loss resets).");

        var (score, noop) = await MeasureLatency(app.GrpcAddress(), stream, scoreRate, scoreSeconds);
        await app.StopAsync();
        await app.DisposeAsync();

        Console.WriteLine();
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}; features on {accelerator}.");
        Console.WriteLine($"Workload: {events:N0} {format} events{(format == EventFormat.Arrow ? $" ({ArrowRows:N0} per message)" : "")} over {partitions} partitions of the embedded broker, {entities:N0} entities; Score at {scoreRate} req/s × 1 row for {scoreSeconds} s.");
        Console.WriteLine();
        Console.WriteLine("| measure | value | ratio |");
        Console.WriteLine("|---|---:|---:|");
        Console.WriteLine(Row("ingest through the engine (events/s)", ingest, $"{ingest / perMessage:F2}× per-message, {ingest / batch:F2}× batch"));
        Console.WriteLine(Row("managed bytes allocated per event while ingesting (whole process)", bytesPerEvent, "host background and this bench's polling loop included"));
        Console.WriteLine(Row("bare Confluent.Kafka per-message consume (events/s)", perMessage, "1.00 (baseline)"));
        Console.WriteLine(Row("librdkafka batch consume (events/s)", batch, $"{batch / perMessage:F2}× per-message (the limit)"));
        Console.WriteLine(Row($"{format} decode alone, in process (events/s)", decodeOnly, $"{ingest / decodeOnly:F2}× (ingest ÷ this)"));
        Console.WriteLine(Row("feature table apply alone, in process, table presized (events/s)", applyOnly, $"{ingest / applyOnly:F2}× (ingest ÷ this)"));
        Console.WriteLine(Row("the same batches' apply inside the engine run (events/s)", applyInEngine, $"{ingest / applyInEngine:F2}× (ingest ÷ this)"));
        Console.WriteLine(Row("Score p50 (ms)", score.P50, $"{score.P50 / noop.P50:F2}× no-op"));
        Console.WriteLine(Row("Score p99 (ms)", score.P99, $"{score.P99 / noop.P99:F2}× no-op"));
        Console.WriteLine(Row("no-op gRPC p50 (ms)", noop.P50, "1.00 (baseline)"));
        Console.WriteLine(Row("no-op gRPC p99 (ms)", noop.P99, "1.00 (baseline)"));
        return metrics.EventsApplied == events ? 0 : 1;
    }

    internal static string Row(string name, double value, string ratio) =>
        string.Create(CultureInfo.InvariantCulture, $"| {name} | {(value >= 100 ? value.ToString("N0", CultureInfo.InvariantCulture) : value.ToString("F3", CultureInfo.InvariantCulture))} | {ratio} |");

    /// <summary>Open loop at a fixed rate: each tick sends one Score and one no-op call, so both see the same conditions.</summary>
    private static async Task<((double P50, double P99) Score, (double P50, double P99) Noop)> MeasureLatency(string address, SyntheticStream stream, int rate, int seconds)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var scoring = new ScoringService.ScoringServiceClient(channel);
        var noop = new NoopService.NoopServiceClient(channel);
        var random = new Random(3);
        // Warm both paths (first-call JIT, HTTP/2 connection).
        for (int i = 0; i < 200; i++)
        {
            await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = stream.Key(random.Next(stream.Entities)) } } });
            await noop.NoopAsync(new NoopRequest { Entity = "warm" });
        }
        var scoreLatencies = new List<double>();
        var noopLatencies = new List<double>();
        var interval = TimeSpan.FromSeconds(1.0 / rate);
        var clock = Stopwatch.StartNew();
        for (long sent = 0; clock.Elapsed.TotalSeconds < seconds; sent++)
        {
            string entity = stream.Key(random.Next(stream.Entities));
            long begin = Stopwatch.GetTimestamp();
            await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = entity } } });
            scoreLatencies.Add(Stopwatch.GetElapsedTime(begin).TotalMilliseconds);
            begin = Stopwatch.GetTimestamp();
            await noop.NoopAsync(new NoopRequest { Entity = entity });
            noopLatencies.Add(Stopwatch.GetElapsedTime(begin).TotalMilliseconds);
            var wait = (sent + 1) * interval - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }
        }
        return (Percentiles(scoreLatencies), Percentiles(noopLatencies));
    }

    internal static (double P50, double P99) Percentiles(IEnumerable<double> values)
    {
        var sorted = values.ToArray();
        if (sorted.Length == 0)
        {
            return (0, 0);
        }
        Array.Sort(sorted);
        double At(double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
        return (At(0.50), At(0.99));
    }
}

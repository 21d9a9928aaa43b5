using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using Grpc.Net.Client;
using Inference.Demo;
using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Hosting;
using Inference.Engine.Kafka;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Proto.V1;
using Inference.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Bench.Pipeline;

/// <summary>
/// Checkpoints with the default features: one backlog of events on the embedded broker, ingested twice
/// in one run (checkpoints off, then every <c>--interval-ms</c>), Score called at a fixed rate all the
/// while; then the newest checkpoint's size, read and restore times. Prints a markdown table.
/// </summary>
internal static class CheckpointBench
{
    private const string Topic = "bench-events";

    public static async Task<int> RunAsync(long events, int entities, int partitions, int intervalMs, int scoreRate, int rounds)
    {
        // The features `inference serve` ships with (its appsettings.json).
        var shipped = ShippedFeatures();
        var definitions = shipped.Get<List<FeatureDefinition>>()!;
        string directory = Path.Combine(Path.GetTempPath(), "inference-checkpoint-bench-" + Guid.NewGuid().ToString("N"));

        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic(Topic, partitions);
        kafka.CreateTopic("bench-labels", 1);
        var stream = new SyntheticStream(entities, seed: 1);
        var produceClock = Stopwatch.StartNew();
        using (var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = kafka.BootstrapServers, LingerMs = 50, BatchSize = 1 << 20, EnableIdempotence = true }).Build())
        {
            for (long i = 0; i < events; i++)
            {
                // Every entity once first, so the table holds all of them; then at random.
                var e = stream.NextEvent(i < entities ? (int)i : null);
                producer.ProduceWaiting(Topic, new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
            }
            producer.Flush(TimeSpan.FromMinutes(5));
        }
        Console.Error.WriteLine($"Produced {events:N0} events over {partitions} partitions in {produceClock.Elapsed.TotalSeconds:F1} s.");

        // Off and on alternate (off, on, off, on, …): warm-up and drift weigh on both alike.
        var offRuns = new List<Run>();
        var onRuns = new List<Run>();
        for (int round = 0; round < rounds; round++)
        {
            var offRun = await Ingest(kafka, stream, entities, events, scoreRate, null, intervalMs, shipped);
            Console.Error.WriteLine($"Checkpoints off: {offRun.Rate:N0} events/s, Score p99 {offRun.Overall.P99:F2} ms.");
            offRuns.Add(offRun);
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
            var onRun = await Ingest(kafka, stream, entities, events, scoreRate, directory, intervalMs, shipped);
            Console.Error.WriteLine($"Checkpoints every {intervalMs} ms: {onRun.Rate:N0} events/s, Score p99 {onRun.Overall.P99:F2} ms, {onRun.Pauses.Count} checkpoints while ingesting.");
            onRuns.Add(onRun);
        }
        var off = offRuns[^1] with { Rate = offRuns.Average(r => r.Rate) };
        var on = onRuns[^1] with
        {
            Rate = onRuns.Average(r => r.Rate),
            Pauses = [.. onRuns.SelectMany(r => r.Pauses)],
            Writes = [.. onRuns.SelectMany(r => r.Writes)],
            WorstCheckpointWindowP99 = onRuns.Max(r => r.WorstCheckpointWindowP99),
        };

        // The newest checkpoint (the final one, of every entity): size, read, restore.
        var newest = CheckpointFiles.List(directory)[^1];
        long bytes = newest.Manifest!.Files.Sum(f => f.Bytes);
        var readClock = Stopwatch.StartNew();
        var checkpoint = CheckpointFiles.Read(newest.Path);
        double readSeconds = readClock.Elapsed.TotalSeconds;
        var options = new FeatureOptions();
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var table = new FeatureTable(device, new FeaturePlan(definitions), new FeatureTableOptions
        {
            InitialCapacity = 1_024,
            MaxCapacity = checkpoint.Table.Capacity,
            MaxBatchEvents = options.MaxBatchEvents,
        });
        var restoreClock = Stopwatch.StartNew();
        table.Restore(checkpoint.Table);
        double restoreSeconds = restoreClock.Elapsed.TotalSeconds;
        long stateBytes = checkpoint.Table.Heads.LongLength + checkpoint.Table.Longs.LongLength * 8 + checkpoint.Table.Doubles.LongLength * 8 + checkpoint.Table.Registers.LongLength * 4;
        Directory.Delete(directory, recursive: true);

        Console.WriteLine();
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}; features on {off.Accelerator}.");
        Console.WriteLine($"Workload: {events:N0} JSON events over {partitions} partitions of the embedded broker, {entities:N0} entities, the {definitions.Count} features `inference serve` ships with; Score at {scoreRate} req/s × 1 row during every ingest; {rounds} rounds of off/on, ingest rates averaged.");
        Console.WriteLine();
        Console.WriteLine("| measure | value | ratio |");
        Console.WriteLine("|---|---:|---:|");
        Console.WriteLine(PipelineBench.Row("ingest, checkpoints off (events/s)", off.Rate, "1.00 (baseline)"));
        Console.WriteLine(PipelineBench.Row($"ingest, a checkpoint every {intervalMs / 1000.0:0.#} s (events/s)", on.Rate, $"{on.Rate / off.Rate:F3}× ({(1 - on.Rate / off.Rate) * 100:F1}% slower)"));
        Console.WriteLine(PipelineBench.Row("checkpoints taken while ingesting (all rounds)", on.Pauses.Count, ""));
        Console.WriteLine(PipelineBench.Row("entities in the final checkpoint", checkpoint.Table.Entities, $"{checkpoint.Table.Capacity:N0} slots"));
        Console.WriteLine(PipelineBench.Row("checkpoint size (MB)", bytes / 1e6, $"{(double)bytes / stateBytes:F3}× the state's {stateBytes / 1e6:N0} MB in memory (LZ4 frames)"));
        Console.WriteLine(PipelineBench.Row("executor pause to copy the state, longest (ms)", on.Pauses.DefaultIfEmpty(0).Max() * 1e3, "applies and Score wait this long"));
        Console.WriteLine(PipelineBench.Row("checkpoint write, longest (ms)", on.Writes.DefaultIfEmpty(0).Max() * 1e3, "off the executor: encode, compress, fsync, rename"));
        Console.WriteLine(PipelineBench.Row("checkpoint read and verify (ms)", readSeconds * 1e3, ""));
        Console.WriteLine(PipelineBench.Row("restore into the table (ms)", restoreSeconds * 1e3, ""));
        Console.WriteLine(PipelineBench.Row("Score p99, checkpoints off (ms)", off.Overall.P99, "1.00 (baseline)"));
        Console.WriteLine(PipelineBench.Row("Score p99, with checkpoints (ms)", on.Overall.P99, $"{on.Overall.P99 / off.Overall.P99:F2}×"));
        Console.WriteLine(PipelineBench.Row("Score p99 in the worst 1-s window, checkpoints off (ms)", off.WorstWindowP99, $"{off.WorstWindowP99 / off.Overall.P99:F2}× its run's p99"));
        Console.WriteLine(PipelineBench.Row("Score p99 in the worst 1-s window holding a checkpoint (ms)", on.WorstCheckpointWindowP99, $"{on.WorstCheckpointWindowP99 / off.WorstWindowP99:F2}× the worst window without checkpoints"));
        Console.WriteLine(PipelineBench.Row("Score latency, longest with checkpoints (ms)", on.Max, $"{on.Max / off.Max:F2}× the longest without"));
        return 0;
    }

    private sealed record Run(double Rate, (double P50, double P99) Overall, double WorstWindowP99, double WorstCheckpointWindowP99, double Max, List<double> Pauses, List<double> Writes, string Accelerator);

    private static IConfigurationSection ShippedFeatures()
    {
        return new ConfigurationBuilder().AddJsonFile(Repository.HostSettings).Build().GetSection("Inference:Features:Definitions");
    }

    private static async Task<Run> Ingest(EmbeddedKafka kafka, SyntheticStream stream, int entities, long events, int scoreRate, string? directory, int intervalMs,
        IConfigurationSection features)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers,
            ["Inference:Kafka:EventsTopic"] = Topic,
            ["Inference:Kafka:LabelsTopic"] = "bench-labels",
            ["Inference:Kafka:DeadLetterTopic"] = "",
            ["Inference:Kafka:GroupId"] = $"bench-engine-{Guid.NewGuid():N}",
            ["Inference:Kafka:SessionTimeoutMs"] = "6000",
            ["Inference:Training:Enabled"] = "false",
            ["Inference:Features:Capacity"] = (entities + entities / 4).ToString(CultureInfo.InvariantCulture),
            ["Inference:Features:InitialCapacity"] = (entities + entities / 4).ToString(CultureInfo.InvariantCulture),
            ["Inference:Checkpoints:Directory"] = directory,
            ["Inference:Checkpoints:IntervalMs"] = intervalMs.ToString(CultureInfo.InvariantCulture),
            ["Inference:Serving:Port"] = "0",
            ["Inference:Serving:HttpPort"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in features.AsEnumerable())
        {
            if (value is not null)
            {
                settings[key] = value;
            }
        }
        // When each checkpoint paused the executor, and for how long (from the engine's own instruments).
        var pauses = new List<(double At, double Seconds)>();
        var writes = new List<double>();
        var clock = Stopwatch.StartNew();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name is "inference.checkpoint.pause" or "inference.checkpoint.write.duration")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((instrument, value, _, _) =>
        {
            lock (pauses)
            {
                if (instrument.Name == "inference.checkpoint.pause")
                {
                    pauses.Add((clock.Elapsed.TotalSeconds, value));
                }
                else
                {
                    writes.Add(value);
                }
            }
        });
        listener.Start();

        var app = InferenceApplication.Build([], settings);
        await app.StartAsync();
        var metrics = app.Services.GetRequiredService<InferenceMetrics>();
        string accelerator = app.Services.GetRequiredService<FeatureStore>().AcceleratorDescription;
        using var stop = new CancellationTokenSource();
        var latencies = new List<(double At, double Ms)>();
        var scoring = Task.Run(() => ScoreLoop(app.GrpcAddress(), stream, scoreRate, clock, latencies, stop.Token));
        var deadline = DateTime.UtcNow.AddMinutes(10);
        while (metrics.EventsApplied == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(1);
        }
        var ingestClock = Stopwatch.StartNew();
        double started = clock.Elapsed.TotalSeconds;
        long first = metrics.EventsApplied;
        while (metrics.EventsApplied < events && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5);
        }
        double rate = (metrics.EventsApplied - first) / ingestClock.Elapsed.TotalSeconds;
        double ended = clock.Elapsed.TotalSeconds;
        await stop.CancelAsync();
        await scoring;
        await app.StopAsync();
        await app.DisposeAsync();

        // Only what happened while ingesting counts (the final checkpoint on stop is not in the timed window).
        var during = latencies.Where(l => l.At >= started && l.At <= ended).ToList();
        var checkpoints = pauses.Where(p => p.At >= started && p.At <= ended).ToList();
        var windows = during.GroupBy(l => (int)l.At).Select(g => (Second: g.Key, P99: PipelineBench.Percentiles(g.Select(x => x.Ms)).P99)).ToList();
        double worstWindow = windows.Select(w => w.P99).DefaultIfEmpty(0).Max();
        double worstCheckpointWindow = windows.Where(w => checkpoints.Any(p => (int)p.At == w.Second || (int)(p.At - p.Seconds) == w.Second))
            .Select(w => w.P99).DefaultIfEmpty(0).Max();
        return new Run(rate, PipelineBench.Percentiles(during.Select(l => l.Ms)), worstWindow, worstCheckpointWindow, during.Select(l => l.Ms).DefaultIfEmpty(0).Max(),
            [.. checkpoints.Select(p => p.Seconds)], [.. writes], accelerator);
    }

    /// <summary>Open loop at a fixed rate; each call's latency with when it was sent.</summary>
    private static async Task ScoreLoop(string address, SyntheticStream stream, int rate, Stopwatch clock, List<(double At, double Ms)> latencies, CancellationToken stop)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var client = new ScoringService.ScoringServiceClient(channel);
        var random = new Random(3);
        var interval = TimeSpan.FromSeconds(1.0 / rate);
        var started = clock.Elapsed;
        for (long sent = 0; !stop.IsCancellationRequested; sent++)
        {
            double at = clock.Elapsed.TotalSeconds;
            long begin = Stopwatch.GetTimestamp();
            await client.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = stream.Key(random.Next(stream.Entities)) } } });
            latencies.Add((at, Stopwatch.GetElapsedTime(begin).TotalMilliseconds));
            var wait = started + (sent + 1) * interval - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait, stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}

using System.Globalization;
using Confluent.Kafka;
using Grpc.Net.Client;
using Inference.Demo;
using Inference.Engine.Features;
using Inference.Engine.Hosting;
using Inference.Engine.Kafka;
using Inference.Models.Registry;
using Inference.Proto.V1;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Host.Demo;

/// <summary>
/// `inference demo`: the whole engine on one machine. An embedded broker; a synthetic event stream
/// whose labels come from a planted model; the engine ingesting, serving and training; a gRPC
/// client scoring at a fixed rate; a progress line per second and a summary at the end.
/// </summary>
internal static class DemoRunner
{
    private const int LabelsPerThousandEvents = 50;
    private const int ScoreRequestsPerSecond = 100;
    private const int RowsPerScoreRequest = 4;
    private static readonly TimeProvider Clock = TimeProvider.System;

    public static async Task<int> RunAsync(TimeSpan? duration, int rate, int entities, int port, int httpPort, string? accelerator)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Inference:Role"] = "All",
            ["Inference:Kafka:Embedded"] = "true",
            ["Inference:Kafka:BootstrapServers"] = "",
            ["Inference:Kafka:EmbeddedPartitions"] = "16",
            ["Inference:Kafka:SessionTimeoutMs"] = "6000",
            ["Inference:Serving:Port"] = port.ToString(CultureInfo.InvariantCulture),
            ["Inference:Serving:HttpPort"] = httpPort.ToString(CultureInfo.InvariantCulture),
            // Every event scored as it is applied, to the scores topic; high scores raise alerts (topic, SSE).
            ["Inference:Outputs:Scores:Enabled"] = "true",
            ["Inference:Outputs:Alerts:Rules:0:Name"] = "high-risk",
            ["Inference:Outputs:Alerts:Rules:0:ScoreAbove"] = "0.995",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Inference"] = "Information",
        };
        if (accelerator is not null)
        {
            settings["Inference:Features:Accelerator"] = accelerator;
        }

        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        if (duration is { } limit)
        {
            stop.CancelAfter(limit);
        }

        Console.WriteLine("Starting the engine (embedded Kafka broker, accelerator, libtorch)...");
        var app = InferenceApplication.Build([], settings);
        await app.StartAsync();
        var services = app.Services;
        var metrics = services.GetRequiredService<InferenceMetrics>();
        var features = services.GetRequiredService<FeatureStore>();
        var registry = services.GetRequiredService<ModelRegistry>();
        var kafka = services.GetRequiredService<KafkaConnection>();
        string address = app.GrpcAddress();
        string http = app.HttpAddress()!;
        Console.WriteLine($"  gRPC       {address}  (inference.v1.ScoringService/Score)");
        Console.WriteLine($"  dashboard  {http}/");
        Console.WriteLine($"  alerts     {http}/alerts/stream  (Server-Sent Events; curl -N)");
        Console.WriteLine($"  metrics    {http}/metrics");
        Console.WriteLine($"  Kafka      {kafka.BootstrapServers}  (embedded; topics events, labels, scores, alerts)");
        Console.WriteLine($"  features   {features.AcceleratorDescription}");
        Console.WriteLine($"  features   {string.Join(", ", features.Plan.Definitions.Select(d => d.Name))}");
        Console.WriteLine($"  model      {registry.Spec.Kind}, {registry.Spec.Inputs} inputs; labels from a planted model of each entity's typical amount");
        Console.WriteLine($"  stream     {rate:N0} events/s over {entities:N0} entities, {LabelsPerThousandEvents} labels per 1000 events; scoring {ScoreRequestsPerSecond} req/s × {RowsPerScoreRequest} rows");
        Console.WriteLine(duration is null ? "Ctrl+C stops." : $"Running for {duration.Value.TotalSeconds:0} s (Ctrl+C stops sooner).");
        Console.WriteLine();

        var stream = new SyntheticStream(entities, seed: 2026);
        var latencies = new LatencyRecorder();
        long started = Clock.GetTimestamp();
        var producing = Task.Run(() => ProduceAsync(kafka.BootstrapServers, stream, rate, stop.Token));
        var scoring = Task.Run(() => Score(address, stream, latencies, stop.Token));

        Console.WriteLine("  time   events/s      lag   scores/s   p50 ms   p99 ms   model v   log loss   accelerator");
        long lastEvents = 0;
        double firstLoss = double.NaN;
        long lastTick = Clock.GetTimestamp();
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), Clock, stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            double seconds = Clock.GetElapsedTime(lastTick).TotalSeconds;
            lastTick = Clock.GetTimestamp();
            long events = metrics.EventsApplied;
            var window = latencies.TakeWindow();
            double loss = metrics.OnlineLogLoss;
            if (double.IsNaN(firstLoss) && !double.IsNaN(loss))
            {
                firstLoss = loss;
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Clock.GetElapsedTime(started).TotalSeconds,5:0}s {(events - lastEvents) / seconds,10:N0} {metrics.ConsumerLag,8:N0} {window.Count * RowsPerScoreRequest / seconds,10:N0} {window.P50,8:F2} {window.P99,8:F2} {registry.Version,9} {loss,10:F4}   {features.AcceleratorDescription}"));
            lastEvents = events;
        }

        await Task.WhenAll(producing, scoring);
        var total = latencies.Total();
        double elapsed = Clock.GetElapsedTime(started).TotalSeconds;
        Console.WriteLine();
        Console.WriteLine("Summary");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  ran              {elapsed:F1} s on {features.AcceleratorDescription}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  events applied   {metrics.EventsApplied:N0} ({metrics.EventsApplied / elapsed:N0}/s), {metrics.MalformedEvents:N0} malformed, {metrics.DroppedEvents:N0} dropped, {metrics.DataLossResets} data-loss resets; {metrics.LateEvents:N0} too late for a window; {features.Entities:N0} entities, {metrics.EvictedEntities:N0} evicted"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  scores served    {metrics.RowsScored:N0} rows in {total.Count:N0} requests; client p50 {total.P50:F2} ms, p99 {total.P99:F2} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  training         {metrics.LabelsTrained:N0} labels; model version {registry.Version}; online log loss {firstLoss:F4} at first, {metrics.OnlineLogLoss:F4} at the end"));
        var outputs = services.GetRequiredService<Inference.Engine.Outputs.OutputMetrics>();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  stream scoring   {outputs.Scored:N0} events scored as applied, to the scores topic; {outputs.Alerts:N0} alerts (score > 0.995)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  planted model    log loss {PlantedLogLoss(stream):F4} (the best any model can do on these labels)"));
        await app.StopAsync();
        await app.DisposeAsync();
        return 0;
    }

    private static async Task ProduceAsync(string bootstrapServers, SyntheticStream stream, int rate, CancellationToken stop)
    {
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 5, EnableIdempotence = true }).Build();
        long clock = Clock.GetTimestamp();
        long produced = 0;
        var random = new Random(7);
        while (!stop.IsCancellationRequested)
        {
            long due = (long)(Clock.GetElapsedTime(clock).TotalSeconds * rate);
            for (; produced < due && !stop.IsCancellationRequested; produced++)
            {
                var e = stream.NextEvent();
                producer.ProduceWaiting("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
                if (random.Next(1000) < LabelsPerThousandEvents)
                {
                    // Label an entity that has been seen: most fraud labels arrive for known accounts.
                    var label = stream.NextLabel(e.Entity);
                    producer.ProduceWaiting("labels", new Message<string, byte[]> { Key = stream.Key(label.Entity), Value = label.Json });
                }
            }
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(5), Clock, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        producer.Flush(TimeSpan.FromSeconds(5));
    }

    private static async Task Score(string address, SyntheticStream stream, LatencyRecorder latencies, CancellationToken stop)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var client = new ScoringService.ScoringServiceClient(channel);
        var random = new Random(11);
        var interval = TimeSpan.FromSeconds(1.0 / ScoreRequestsPerSecond);
        long clock = Clock.GetTimestamp();
        long sent = 0;
        while (!stop.IsCancellationRequested)
        {
            var request = new ScoreRequest();
            for (int r = 0; r < RowsPerScoreRequest; r++)
            {
                request.Rows.Add(new ScoreRow { Entity = stream.Key(random.Next(stream.Entities)), RequestId = $"demo-{sent}-{r}" });
            }
            long begin = Clock.GetTimestamp();
            try
            {
                await client.ScoreAsync(request, cancellationToken: stop);
                latencies.Record(Clock.GetElapsedTime(begin).TotalMilliseconds);
            }
            catch (Grpc.Core.RpcException) when (stop.IsCancellationRequested)
            {
                break;
            }
            sent++;
            // Fixed request rate (open loop): wait for the next slot, not a fixed pause.
            var wait = sent * interval - Clock.GetElapsedTime(clock);
            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait, Clock, stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private static double PlantedLogLoss(SyntheticStream stream)
    {
        double total = 0;
        for (int e = 0; e < stream.Entities; e++)
        {
            double p = stream.TrueProbability(e);
            total -= p * Math.Log(p) + (1 - p) * Math.Log(1 - p);
        }
        return total / stream.Entities;
    }
}

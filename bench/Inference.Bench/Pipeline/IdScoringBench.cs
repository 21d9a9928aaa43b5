using System.Diagnostics;
using System.Globalization;
using Grpc.Net.Client;
using Inference.Engine.Hosting;
using Inference.Engine.Kafka;
using Inference.Proto.V1;
using Inference.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Bench.Pipeline;

/// <summary>
/// Score latency of a model over ids against the model over the aggregates alone, in one process at once: two
/// engines fed the same planted workload (events, then labels learned), then an open-loop load at a fixed rate on
/// each, one request to each per tick, latency counted from when a request was due (coordinated omission
/// corrected). Both see the same machine at the same moments.
/// </summary>
internal static class IdScoringBench
{
    public static async Task<int> RunAsync(int users, int items, int labels, int rate, int seconds, int dimension)
    {
        Console.WriteLine($"Score with ids against without: {users:N0} users, {items:N0} items, {labels:N0} labels learned first; {rate:N0} req/s on each engine for {seconds} s; {Environment.ProcessorCount} cores.");
        using var kafkaIds = new EmbeddedKafka();
        using var kafkaPlain = new EmbeddedKafka();
        await using var withIds = await StartAsync(kafkaIds, "DotProduct", users, items, dimension);
        await using var plain = await StartAsync(kafkaPlain, "Logistic", users, items, dimension);
        await Feed(withIds, kafkaIds, users, items, labels, true);
        await Feed(plain, kafkaPlain, users, items, labels, false);

        using var idsChannel = GrpcChannel.ForAddress(withIds.App.GrpcAddress());
        using var plainChannel = GrpcChannel.ForAddress(plain.App.GrpcAddress());
        var idsClient = new ScoringService.ScoringServiceClient(idsChannel);
        var plainClient = new ScoringService.ScoringServiceClient(plainChannel);
        var workload = new PlantedIds(users, items, seed: 29);
        ScoreRequest Request(bool ids)
        {
            var label = workload.NextLabel();
            var row = new ScoreRow { Entity = PlantedIds.UserKey(label.User) };
            if (ids)
            {
                row.Ids.Add("item", PlantedIds.ItemKey(label.Item));
            }
            return new ScoreRequest { Rows = { row } };
        }
        for (int i = 0; i < 500; i++)
        {
            await idsClient.ScoreAsync(Request(true));
            await plainClient.ScoreAsync(Request(false));
        }
        var idsLatencies = new List<double>();
        var plainLatencies = new List<double>();
        var pending = new List<Task>();
        var interval = TimeSpan.FromSeconds(1.0 / rate);
        var clock = Stopwatch.StartNew();
        for (long tick = 0; tick * interval.TotalSeconds < seconds; tick++)
        {
            var due = tick * interval;
            var wait = due - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait);
            }
            pending.Add(Timed(idsClient, Request(true), clock, due, idsLatencies));
            pending.Add(Timed(plainClient, Request(false), clock, due, plainLatencies));
        }
        await Task.WhenAll(pending);
        var (idsP50, idsP99, idsP999) = Percentiles(idsLatencies);
        var (plainP50, plainP99, plainP999) = Percentiles(plainLatencies);
        Console.WriteLine("| model | p50 (ms) | p99 (ms) | p99.9 (ms) |");
        Console.WriteLine("|---|---|---|---|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| DotProduct over 2 ids of dimension {dimension} | {idsP50:F2} | {idsP99:F2} | {idsP999:F2} |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| Logistic over the aggregates | {plainP50:F2} | {plainP99:F2} | {plainP999:F2} |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"p99 with ids ÷ without: {idsP99 / plainP99:F2}; p99.9: {idsP999 / plainP999:F2}"));
        return 0;
    }

    private static async Task Timed(ScoringService.ScoringServiceClient client, ScoreRequest request, Stopwatch clock, TimeSpan due, List<double> latencies)
    {
        await client.ScoreAsync(request);
        double milliseconds = (clock.Elapsed - due).TotalMilliseconds;
        lock (latencies)
        {
            latencies.Add(milliseconds);
        }
    }

    private static (double P50, double P99, double P999) Percentiles(List<double> values)
    {
        var sorted = values.Order().ToArray();
        double At(double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
        return (At(0.5), At(0.99), At(0.999));
    }

    private sealed class Engine(WebApplication app) : IAsyncDisposable
    {
        public WebApplication App => app;

        public InferenceMetrics Metrics => app.Services.GetRequiredService<InferenceMetrics>();

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private static async Task<Engine> StartAsync(EmbeddedKafka kafka, string kind, int users, int items, int dimension)
    {
        kafka.CreateTopic("events", 4);
        kafka.CreateTopic("labels", 4);
        var settings = PlantedIdsBench.Settings(kafka, kind, users, items, dimension);
        var app = InferenceApplication.Build([], settings);
        await app.StartAsync();
        return new Engine(app);
    }

    private static async Task Feed(Engine engine, EmbeddedKafka kafka, int users, int items, int labels, bool ids)
    {
        using var channel = GrpcChannel.ForAddress(engine.App.GrpcAddress());
        var run = new PlantedRun(new PlantedIds(users, items, seed: 29), kafka.BootstrapServers, channel, () => engine.Metrics.EventsApplied, () => engine.Metrics.LabelsTrained)
        {
            WithIds = ids,
            Block = 4_096,
            Timeout = TimeSpan.FromMinutes(10),
        };
        await run.RunAsync(labels, Math.Min(labels, 1_000), 1);
    }
}

using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Inference.Client;
using Inference.Demo;
using Inference.Engine.Hosting;
using Inference.Engine.Kafka;
using Inference.Engine.Pool;
using Inference.Proto.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Inference.Bench.Pipeline;

/// <summary>
/// A pool's costs, in one process over loopback gRPC: one sync round (every worker pushes a delta and
/// pulls the merged parameters) against model size and worker count, beside the gRPC floor (a health
/// check on the same server); and Score from one worker of three when a third of each request's rows are
/// forwarded to their owners, against requests whose rows are all local, alternating in the same run.
/// Prints markdown tables.
/// </summary>
internal static class PoolBench
{
    private const int Partitions = 12;
    private const int MaxMessageBytes = 256 << 20;

    public static async Task<int> RunAsync(int scoreRate, int scoreSeconds, int rows)
    {
        await SyncRoundsAsync();
        await ForwardingAsync(scoreRate, scoreSeconds, rows);
        return 0;
    }

    private static async Task<WebApplication> StartAsync(Dictionary<string, string?> settings)
    {
        settings["Inference:Serving:Port"] = "0";
        settings["Inference:Serving:HttpPort"] = "-1";
        settings["Inference:Features:Accelerator"] = "Cpu";
        settings["Logging:LogLevel:Default"] = "Warning";
        var app = InferenceApplication.Build([], settings, logging => logging.AddSimpleConsole(o => o.SingleLine = true));
        await app.StartAsync();
        return app;
    }

    private static GrpcChannel Channel(string address) =>
        GrpcChannel.ForAddress(address, new GrpcChannelOptions { MaxReceiveMessageSize = MaxMessageBytes, MaxSendMessageSize = MaxMessageBytes });

    private static async Task SyncRoundsAsync()
    {
        Console.WriteLine("| parameters | workers | sync round p50 (ms) | bytes moved per round | MB/s | gRPC floor p50 (ms) |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
        foreach (int size in new[] { 10_000, 1_000_000, 10_000_000 })
        {
            foreach (int workers in new[] { 1, 3 })
            {
                await using var ps = await StartAsync(new() { ["Inference:Role"] = "Ps", ["Inference:Sync:MaxStaleness"] = "1000000" });
                string address = ps.GrpcAddress();
                var channels = Enumerable.Range(0, workers).Select(_ => Channel(address)).ToList();
                var clients = channels.Select(c => new ParameterService.ParameterServiceClient(c)).ToList();
                var values = new float[size];
                Array.Fill(values, 0.5f);
                var initial = new PushRequest { WorkerId = "w0", Initialize = true };
                initial.Deltas.Add(Tensor(size, values));
                await clients[0].PushAsync(initial);
                Array.Fill(values, 1e-7f);
                var delta = Tensor(size, values);
                int rounds = size >= 10_000_000 ? 4 : size >= 1_000_000 ? 10 : 50;
                var times = new List<double>();
                var versions = new long[workers];
                for (int round = 0; round < rounds + 1; round++)
                {
                    var clock = Stopwatch.StartNew();
                    await Task.WhenAll(Enumerable.Range(0, workers).Select(async w =>
                    {
                        var push = new PushRequest { WorkerId = $"w{w}", BaseVersion = versions[w], Sequence = (ulong)round + 1 };
                        push.Deltas.Add(delta);
                        await clients[w].PushAsync(push);
                        versions[w] = (await clients[w].PullAsync(new PullRequest { WorkerId = $"w{w}" })).Version;
                    }));
                    if (round > 0)
                    {
                        // The first round warms the connections up.
                        times.Add(clock.Elapsed.TotalMilliseconds);
                    }
                }
                var health = new Health.HealthClient(channels[0]);
                var floor = new List<double>();
                for (int i = 0; i < 50; i++)
                {
                    var clock = Stopwatch.StartNew();
                    await health.CheckAsync(new HealthCheckRequest());
                    floor.Add(clock.Elapsed.TotalMilliseconds);
                }
                double p50 = PipelineBench.Percentiles(times).P50;
                long bytes = 2L * workers * size * sizeof(float);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {size:N0} | {workers} | {p50:F2} | {bytes / 1e6:F1} MB | {bytes / 1e6 / (p50 / 1000):F0} | {PipelineBench.Percentiles(floor).P50:F3} |"));
                foreach (var channel in channels)
                {
                    channel.Dispose();
                }
            }
        }
        Console.WriteLine();
    }

    private static NamedTensor Tensor(int size, float[] values)
    {
        var tensor = new NamedTensor { Name = "layers.embedding.weight" };
        tensor.Shape.Add([size / 1_000, 1_000]);
        tensor.Values.Add(values);
        return tensor;
    }

    private static async Task ForwardingAsync(int scoreRate, int scoreSeconds, int rows)
    {
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        kafka.CreateTopic("labels", Partitions);
        await using var ps = await StartAsync(new() { ["Inference:Role"] = "Ps" });
        var workers = new List<WebApplication>();
        for (int w = 0; w < 3; w++)
        {
            workers.Add(await StartAsync(new()
            {
                ["Inference:Role"] = "Worker",
                ["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers,
                ["Inference:Kafka:GroupId"] = "pool",
                ["Inference:Kafka:DeadLetterTopic"] = "",
                ["Inference:Kafka:SessionTimeoutMs"] = "3000",
                ["Inference:Training:Enabled"] = "false",
                ["Inference:Sync:ParameterServer"] = ps.GrpcAddress(),
                ["Inference:Sync:WorkerId"] = $"w{w}",
                ["Inference:Sync:IntervalMs"] = "200",
            }));
        }
        try
        {
            const int Entities = 3_000;
            var stream = new SyntheticStream(Entities, seed: 3);
            using (var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = kafka.BootstrapServers, Partitioner = Partitioner.Murmur2Random, LingerMs = 5 }).Build())
            {
                for (int i = 0; i < 30_000; i++)
                {
                    var e = stream.NextEvent(i < Entities ? i : null);
                    producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
                }
                producer.Flush(TimeSpan.FromMinutes(1));
            }
            var first = workers[0];
            var owned = first.Services.GetRequiredService<PartitionOwnership>();
            var pool = first.Services.GetRequiredService<ScoreRouter>().Pool;
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (DateTime.UtcNow < deadline && !(workers.Sum(w => w.Services.GetRequiredService<InferenceMetrics>().EventsApplied) == 30_000
                && Enumerable.Range(0, Partitions).All(p => owned.Owns(p) || pool.RemoteOwner(p) is not null) && owned.Owned.Count is > 0 and < Partitions))
            {
                await Task.Delay(200);
            }
            var keys = Enumerable.Range(0, Entities).Select(stream.Key).ToList();
            var local = keys.Where(k => owned.Owns(KafkaPartitioner.PartitionOf(k, Partitions))).ToList();
            var remote = keys.Where(k => !owned.Owns(KafkaPartitioner.PartitionOf(k, Partitions))).ToList();
            Console.Error.WriteLine($"Worker w0 owns partitions {string.Join(",", owned.Owned)}: {local.Count} of {Entities} entities.");
            int forwardedRows = rows / 3;
            var random = new Random(9);
            ScoreRequest Request(bool mixed)
            {
                var request = new ScoreRequest();
                for (int r = 0; r < rows; r++)
                {
                    var pick = mixed && r < forwardedRows ? remote : local;
                    request.Rows.Add(new ScoreRow { Entity = pick[random.Next(pick.Count)] });
                }
                return request;
            }
            using var channel = Channel(first.GrpcAddress());
            var scoring = new ScoringService.ScoringServiceClient(channel);
            var health = new Health.HealthClient(channel);
            var latencies = new Dictionary<string, List<double>> { ["all local"] = [], ["a third forwarded"] = [], ["health check"] = [] };
            // One-second blocks, alternating: drift and noise weigh on both alike.
            for (int block = 0; block < scoreSeconds * 2 + 1; block++)
            {
                string kind = block == 0 ? "warm-up" : block % 2 == 1 ? "all local" : "a third forwarded";
                var calls = new List<Task<double>>();
                var probes = new List<Task<double>>();
                var start = Stopwatch.GetTimestamp();
                for (int i = 0; i < scoreRate; i++)
                {
                    long scheduled = start + (long)(i * (double)Stopwatch.Frequency / scoreRate);
                    long wait = scheduled - Stopwatch.GetTimestamp();
                    if (wait > 0)
                    {
                        await Task.Delay(TimeSpan.FromTicks(wait * TimeSpan.TicksPerSecond / Stopwatch.Frequency));
                    }
                    // Open loop: latency from the scheduled send time (no coordinated omission).
                    calls.Add(Measure(scoring.ScoreAsync(Request(kind == "a third forwarded")).ResponseAsync, scheduled));
                    if (i % 10 == 0)
                    {
                        probes.Add(Measure(health.CheckAsync(new HealthCheckRequest()).ResponseAsync, Stopwatch.GetTimestamp()));
                    }
                }
                var measured = await Task.WhenAll(calls);
                var floor = await Task.WhenAll(probes);
                if (kind != "warm-up")
                {
                    latencies[kind].AddRange(measured);
                    latencies["health check"].AddRange(floor);
                }
            }
            Console.WriteLine($"Score of {rows} rows from one worker of three at {scoreRate}/s (open loop, {scoreSeconds} s each, alternating in 1 s blocks):");
            Console.WriteLine();
            Console.WriteLine("| requests | p50 (ms) | p99 (ms) | calls |");
            Console.WriteLine("|---|---:|---:|---:|");
            foreach (var (kind, values) in latencies)
            {
                var (p50, p99) = PipelineBench.Percentiles(values);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {kind} | {p50:F2} | {p99:F2} | {values.Count} |"));
            }
            double forwardedP99 = PipelineBench.Percentiles(latencies["a third forwarded"]).P99;
            double localP99 = PipelineBench.Percentiles(latencies["all local"]).P99;
            double extra = forwardedP99 - localP99;
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Extra Score p99 with a third of the rows forwarded: {extra:F2} ms ({forwardedP99 / localP99:F2}x all local)."));
        }
        finally
        {
            foreach (var worker in workers)
            {
                await worker.DisposeAsync();
            }
        }
    }

    private static async Task<double> Measure<T>(Task<T> call, long from)
    {
        await call;
        return (Stopwatch.GetTimestamp() - from) * 1000.0 / Stopwatch.Frequency;
    }
}

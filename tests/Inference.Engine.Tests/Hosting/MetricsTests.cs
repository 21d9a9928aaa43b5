using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using Inference.Demo;
using Inference.Proto.V1;

namespace Inference.Engine.Tests;

/// <summary>A real Prometheus server scrapes the engine's /metrics during an end-to-end run.</summary>
public sealed class MetricsTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "inference-prometheus-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [SkippableFact]
    public async Task Prometheus_scrapes_a_rate_of_applied_events_and_a_score_latency_histogram()
    {
        string? prometheus = new[] { "/usr/bin/prometheus", "/usr/local/bin/prometheus" }.FirstOrDefault(File.Exists);
        Skip.If(prometheus is null, "needs the prometheus server (Debian: apt-get install prometheus; .ci/run installs it)");

        // The engine runs as it is deployed, one to a process: OpenTelemetry subscribes to meters by name,
        // so engines hosted side by side in one process (as other test classes do in parallel) would
        // share instruments and Prometheus would read theirs.
        Directory.CreateDirectory(_directory);
        using var kafka = StreamScoringTests.Broker();
        int httpPort = EngineProcess.FreePort();
        using var engine = EngineProcess.Start(
            ["--bootstrap-servers", kafka.BootstrapServers, "--accelerator", "Cpu", $"--Inference:Serving:HttpPort={httpPort}",
             "--Inference:Kafka:SessionTimeoutMs=3000"],
            Path.Combine(_directory, "engine.log"));
        await engine.WaitReadyAsync(TimeSpan.FromSeconds(120));
        var target = new Uri($"http://127.0.0.1:{httpPort}");
        long produced = 0;

        int port = EngineProcess.FreePort();
        string config = Path.Combine(_directory, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: inference
                static_configs:
                  - targets: ["{target.Host}:{target.Port}"]
            """);
        using var server = Process.Start(new ProcessStartInfo(prometheus!)
        {
            ArgumentList = { $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(_directory, "data")}", $"--web.listen-address=127.0.0.1:{port}" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        server.OutputDataReceived += (_, _) => { };
        server.ErrorDataReceived += (_, _) => { };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        try
        {
            // Load while Prometheus scrapes: events streaming in, Score called.
            using var stop = new CancellationTokenSource();
            var stream = new SyntheticStream(entities: 500, seed: 4);
            var load = Task.Run(async () =>
            {
                using var producer = EngineHarness.Producer(kafka.BootstrapServers);
                var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
                while (!stop.IsCancellationRequested)
                {
                    for (int i = 0; i < 200; i++)
                    {
                        var e = stream.NextEvent();
                        producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
                        Interlocked.Increment(ref produced);
                    }
                    await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = stream.Key(stream.NextEntity()) } } });
                    await Task.Delay(50);
                }
            });
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            async Task<double?> Query(string promql)
            {
                try
                {
                    using var document = JsonDocument.Parse(await client.GetStringAsync("/api/v1/query?query=" + Uri.EscapeDataString(promql)));
                    var result = document.RootElement.GetProperty("data").GetProperty("result");
                    return result.GetArrayLength() == 0 ? null
                        : double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
                }
                catch (HttpRequestException)
                {
                    return null; // not up yet
                }
            }
            // Each reading is kept once Prometheus has shown it: under a loaded machine one query can land
            // between scrapes (a window with one sample has no rate), so they need not all hold at one instant.
            double? eventsRate = null;
            double? p99 = null;
            double? partitions = null;
            double? version = null;
            static double? Kept(double? kept, double? now) => kept > 0 ? kept : now;
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (DateTime.UtcNow < deadline && !(eventsRate > 0 && p99 > 0 && partitions > 0 && version > 0))
            {
                await Task.Delay(1_000);
                eventsRate = Kept(eventsRate, await Query("rate(inference_ingest_events_total[30s])"));
                p99 = Kept(p99, await Query("histogram_quantile(0.99, sum(rate(inference_serving_duration_seconds_bucket[30s])) by (le))"));
                partitions = Kept(partitions, await Query("count(inference_ingest_partition_lag)"));
                version = Kept(version, await Query("max(inference_model_version)"));
            }
            // Seconds histograms resolve milliseconds (the exporters' default bounds, 0–10,000, put every call under 5 s).
            double? millisecondBucket = await Query("count(inference_serving_duration_seconds_bucket{le=\"0.001\"})");
            double? scrapes = await Query("count_over_time(up[5m])");
            // The runtime's meter too: collections per generation and their pause time, for reading tails against.
            double? generations = await Query("count(dotnet_gc_collections_total)");
            double? pauses = await Query("dotnet_gc_pause_time_seconds_total");
            await stop.CancelAsync();
            await load;
            Assert.True(eventsRate > 0, $"Prometheus's rate of applied events: {eventsRate?.ToString(CultureInfo.InvariantCulture) ?? "none"} ({Interlocked.Read(ref produced)} events produced; Prometheus took {scrapes} scrapes). The engine's log:\n{engine.Tail()}");
            Assert.True(p99 > 0, $"Prometheus's Score p99 from the latency histogram: {p99?.ToString(CultureInfo.InvariantCulture) ?? "none"}");
            Assert.True(millisecondBucket > 0, "the Score latency histogram has a 1 ms bucket");
            Assert.True(partitions > 0, "consumer lag per partition");
            Assert.True(version >= 1, "the serving model's version");
            Assert.True(generations >= 3, $"the runtime's collections per generation: {generations?.ToString(CultureInfo.InvariantCulture) ?? "none"} series");
            Assert.True(pauses is not null, "the runtime's GC pause time");
        }
        finally
        {
            server.Kill();
            server.WaitForExit();
        }
    }
}

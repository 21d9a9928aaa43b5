using System.Globalization;
using Confluent.Kafka;
using Inference.Demo;
using Inference.Engine.Checkpoints;
using Inference.Engine.Kafka;
using Inference.Proto.V1;
using Xunit.Abstractions;

namespace Inference.Acceptance.Tests;

/// <summary>
/// Exactly-once state across crashes, from outside: <c>inference serve</c> runs as a child process on an
/// embedded broker that outlives it, is SIGKILLed at seeded random moments while events and labels
/// stream in, and is started again each time.
/// </summary>
[Collection(nameof(CrashTests))]
public sealed class CrashTests(ITestOutputHelper output) : IDisposable
{
    private const int Partitions = 8;
    private const int Entities = 2_000;
    private const int Events = 100_000;
    private const int EventsPerLabel = 10;
    private const int Kills = 20;

    private readonly string _root = Path.Combine(Path.GetTempPath(), "inference-crash-" + Guid.NewGuid().ToString("N"));
    private bool _passed;

    public void Dispose()
    {
        // A failed run keeps the engines' logs and checkpoints for a look (`inference checkpoint inspect`).
        if (_passed && Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task Twenty_kills_during_ingest_and_training_lose_nothing_and_count_nothing_twice()
    {
        Directory.CreateDirectory(_root);
        output.WriteLine($"logs and checkpoints in {_root} (kept if the test fails)");
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels" })
        {
            kafka.CreateTopic(topic, Partitions);
        }
        kafka.CreateTopic("events.dead-letter", 1);
        kafka.CreateTopic("labels.dead-letter", 1);
        string features = Path.Combine(_root, "features.json");
        File.WriteAllText(features, """
            [
              { "Name": "count", "Aggregation": "Count", "Transform": "SignedLog1p" },
              { "Name": "sum", "Aggregation": "Sum", "Field": "amount", "Transform": "SignedLog1p" },
              { "Name": "min", "Aggregation": "Min", "Field": "amount", "Transform": "SignedLog1p" },
              { "Name": "max", "Aggregation": "Max", "Field": "amount", "Transform": "SignedLog1p" },
              { "Name": "last", "Aggregation": "Last", "Field": "amount", "Transform": "SignedLog1p" },
              { "Name": "mean", "Aggregation": "Mean", "Field": "amount", "Transform": "SignedLog1p" }
            ]
            """);
        string[] Switches(string group, string checkpoints) =>
        [
            "--bootstrap-servers", kafka.BootstrapServers,
            "--group-id", group,
            "--checkpoints", checkpoints,
            "--features", features,
            "--accelerator", "Cpu",
            "--Inference:Serving:HttpPort=0",
            "--Inference:Checkpoints:IntervalMs=1000",
            "--Inference:Features:Capacity=20000",
            "--Inference:Features:InitialCapacity=4096",
            "--Inference:Features:MaxBatchEvents=2048",
            // A killed engine's group membership expires after this; its successor is assigned then.
            "--Inference:Kafka:SessionTimeoutMs=3000",
            "--Inference:Training:BatchSize=32",
            "--Logging:LogLevel:Default=Information",
        ];

        // The stream: every tenth event is followed by a label; entities 0, 10, 20, … are held out (never labelled).
        var stream = new SyntheticStream(Entities, seed: 2026);
        var amounts = new List<float>[Entities];
        for (int e = 0; e < Entities; e++)
        {
            amounts[e] = [];
        }
        int labels = 0;
        var producing = Task.Run(async () =>
        {
            using var producer = EngineHarness.Producer(kafka.BootstrapServers);
            for (int i = 0; i < Events; i++)
            {
                var e = stream.NextEvent();
                amounts[e.Entity].Add(e.Amount);
                producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
                if (i % EventsPerLabel == 0 && e.Entity % 10 != 0)
                {
                    producer.Produce("labels", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = stream.NextLabel(e.Entity).Json });
                    labels++;
                }
                if (i % 1_000 == 999)
                {
                    // About 1,500 events a second: the stream spans the kills.
                    await Task.Delay(600);
                }
            }
            producer.FlushAll();
        });

        string crashed = Path.Combine(_root, "crashed");
        string log = Path.Combine(_root, "crashed.log");
        var random = new Random(20_261_126);
        int killedLive = 0;
        for (int kill = 0; kill < Kills; kill++)
        {
            using var engine = EngineProcess.Start(Switches("crashed", crashed), log);
            await engine.WaitUpAsync(TimeSpan.FromSeconds(60));
            // Anywhere from restoring (before the group assigns partitions, ~3 s) to deep into the live stream.
            await Task.Delay(TimeSpan.FromMilliseconds(300 + random.Next(7_000)));
            Assert.False(engine.HasExited, $"The engine exited by itself before kill {kill + 1}. Its log:\n{engine.Tail()}");
            killedLive += await engine.HealthAsync() == Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving ? 1 : 0;
            engine.Crash();
        }
        await producing;
        output.WriteLine($"{Kills} kills done ({killedLive} while serving the live stream, the rest while restoring or replaying); {Events} events and {labels} labels produced.");

        // Started once more after the stream ended: ready means every event and label is replayed.
        using var restarted = EngineProcess.Start(Switches("crashed", crashed), log);
        await restarted.WaitReadyAsync(TimeSpan.FromSeconds(120));
        await AssertFeaturesEqualOracle(restarted, stream, amounts);

        // The same stream without interruption, for the model.
        using var uninterrupted = EngineProcess.Start(Switches("uninterrupted", Path.Combine(_root, "uninterrupted")), Path.Combine(_root, "uninterrupted.log"));
        await uninterrupted.WaitReadyAsync(TimeSpan.FromSeconds(120));
        double crashedLoss = await HeldOutLogLoss(restarted, stream);
        double uninterruptedLoss = await HeldOutLogLoss(uninterrupted, stream);
        output.WriteLine($"held-out log loss: crashed {crashedLoss:0.0000}, uninterrupted {uninterruptedLoss:0.0000}");

        Assert.Equal(0, restarted.Stop(TimeSpan.FromSeconds(30)));
        Assert.Equal(0, uninterrupted.Stop(TimeSpan.FromSeconds(30)));
        var trainer = CheckpointFiles.List(crashed)[^1].Manifest!.Trainer!;
        output.WriteLine($"labels learned across all restarts: {trainer.LabelsLearned} of {labels} (skipped {trainer.LabelsSkipped})");
        // Every label learned once: the count across all restarts is what was produced, and the offsets reached the end.
        Assert.Equal(labels, trainer.LabelsLearned + trainer.LabelsSkipped);
        Assert.Equal(0, trainer.LabelsSkipped);
        Assert.Equal(labels - Partitions, trainer.Offsets.Sum(o => o.Offset));
        // What an operator sees: `inference checkpoint inspect` verifies the newest checkpoint and reports it.
        var (exitCode, inspected) = EngineProcess.RunCommand("checkpoint", "inspect", crashed);
        output.WriteLine(inspected);
        Assert.Equal(0, exitCode);
        Assert.Contains($"{labels} labels learned", inspected);
        Assert.Contains($"{Entities} entities", inspected);
        Assert.True(Math.Abs(crashedLoss - uninterruptedLoss) <= 0.01,
            $"held-out log loss after {Kills} crashes {crashedLoss:0.0000} vs uninterrupted {uninterruptedLoss:0.0000}");
        // Both learned the planted model: better than knowing nothing (log 2).
        Assert.True(uninterruptedLoss < Math.Log(2) - 0.02, $"uninterrupted held-out log loss {uninterruptedLoss:0.0000}: the model learned nothing");
        _passed = true;
    }

    /// <summary>Every entity's count, min, max and last exactly, its sum within 1e-5 relative, read with GetFeatures.</summary>
    private static async Task AssertFeaturesEqualOracle(EngineProcess engine, SyntheticStream stream, List<float>[] amounts)
    {
        var client = new ScoringService.ScoringServiceClient(engine.Channel);
        var failures = new List<string>();
        for (int start = 0; start < Entities; start += 500)
        {
            var request = new GetFeaturesRequest();
            request.Entities.AddRange(Enumerable.Range(start, Math.Min(500, Entities - start)).Select(stream.Key));
            var response = await client.GetFeaturesAsync(request);
            Assert.Equal(["count", "sum", "min", "max", "last", "mean"], response.FeatureNames);
            for (int i = 0; i < response.Entities.Count; i++)
            {
                int e = start + i;
                var row = response.Entities[i];
                var list = amounts[e];
                if (list.Count == 0)
                {
                    if (row.Found)
                    {
                        failures.Add($"{stream.Key(e)}: no events, yet found");
                    }
                    continue;
                }
                double sum = list.Sum(a => (double)a);
                if (!row.Found || row.Values[0] != list.Count || row.Values[2] != list.Min() || row.Values[3] != list.Max() || row.Values[4] != list[^1]
                    || Math.Abs(row.Values[1] - sum) > 1e-5 * Math.Max(1, Math.Abs(sum)))
                {
                    failures.Add(string.Create(CultureInfo.InvariantCulture,
                        $"{stream.Key(e)}: expected count {list.Count} sum {sum} min {list.Min()} max {list.Max()} last {list[^1]}; got {(row.Found ? string.Join(' ', row.Values) : "nothing")}"));
                }
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} entities differ from the oracle, e.g.\n{string.Join('\n', failures.Take(10))}");
    }

    /// <summary>Cross-entropy of the served scores of the held-out entities against their planted probabilities.</summary>
    private static async Task<double> HeldOutLogLoss(EngineProcess engine, SyntheticStream stream)
    {
        var client = new ScoringService.ScoringServiceClient(engine.Channel);
        var request = new ScoreRequest();
        var heldOut = Enumerable.Range(0, Entities).Where(e => e % 10 == 0).ToArray();
        foreach (int e in heldOut)
        {
            request.Rows.Add(new ScoreRow { Entity = stream.Key(e) });
        }
        var response = await client.ScoreAsync(request);
        double loss = 0;
        for (int i = 0; i < heldOut.Length; i++)
        {
            double p = stream.TrueProbability(heldOut[i]);
            double q = Math.Clamp(response.Scores[i], 1e-7, 1 - 1e-7);
            loss -= p * Math.Log(q) + (1 - p) * Math.Log(1 - q);
        }
        return loss / heldOut.Length;
    }
}

/// <summary>
/// The crash test runs alone, after the others: three engine processes and a broker take both cores,
/// and a test beside it that waits on timers (Prometheus scrapes, group joins) would wait in vain.
/// </summary>
[CollectionDefinition(nameof(CrashTests), DisableParallelization = true)]
public sealed class CrashTestsAlone;

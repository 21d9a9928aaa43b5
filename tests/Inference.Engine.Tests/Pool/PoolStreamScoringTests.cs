using System.Text;
using Confluent.Kafka;
using Inference.Engine.Outputs;
using Inference.Engine.Pool;

namespace Inference.Engine.Tests;

/// <summary>
/// Stream scoring in a pool: each worker produces as its own transactional id, and when a worker stops
/// its partitions' scoring progress moves with them, so the pool scores a skewed stream exactly once.
/// </summary>
public sealed class PoolStreamScoringTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task When_a_worker_stops_its_partitions_are_scored_on_by_the_other_exactly_once(bool sharedCheckpoints)
    {
        using var kafka = StreamScoringTests.Broker();
        string pool = Path.Combine(Path.GetTempPath(), "inference-pool-scores-" + Guid.NewGuid().ToString("N"));
        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps = await EngineHarness.StartAsync(psSettings);
        Dictionary<string, string?> Member(string name)
        {
            var settings = StreamScoringTests.Settings(kafka, select: "All");
            settings["Inference:Role"] = "Worker";
            settings["Inference:Kafka:GroupId"] = "pool";
            settings["Inference:Kafka:SessionTimeoutMs"] = "3000";
            settings["Inference:Sync:ParameterServer"] = ps.Address;
            settings["Inference:Sync:WorkerId"] = name;
            if (sharedCheckpoints)
            {
                settings["Inference:Checkpoints:Directory"] = pool;
                settings["Inference:Checkpoints:IntervalMs"] = "1000";
            }
            return settings;
        }
        try
        {
            var stream = SkewedStream.Create(12_000, seed: 21);
            await using var a = await EngineHarness.StartAsync(Member("a"));
            var b = await EngineHarness.StartAsync(Member("b"));
            var ownedA = a.Get<PartitionOwnership>();
            var ownedB = b.Get<PartitionOwnership>();
            await EngineHarness.WaitUntil(() => ownedA.Owned.Count > 0 && ownedB.Owned.Count > 0, TimeSpan.FromSeconds(60), () => "both workers to own partitions");
            Assert.Equal("pool-scores-a", a.Get<StreamScorer>().TransactionalId);
            Assert.Equal("pool-scores-b", b.Get<StreamScorer>().TransactionalId);

            await Produce(kafka.BootstrapServers, stream, 0, 8_000);
            await EngineHarness.WaitUntil(() => a.Metrics.EventsApplied + b.Metrics.EventsApplied >= 8_000, TimeSpan.FromSeconds(90),
                () => $"8,000 events applied (a {a.Metrics.EventsApplied}, b {b.Metrics.EventsApplied})");
            Assert.True(b.Get<OutputMetrics>().Scored > 0, "b scored nothing before it stopped");

            // b stops gracefully while a goes on: b's partitions, and how far they were scored, move to a.
            await b.DisposeAsync();
            await EngineHarness.WaitUntil(() => ownedA.Owned.Count == 8, TimeSpan.FromSeconds(60), () => "a to own every partition");
            await Produce(kafka.BootstrapServers, stream, 8_000, 12_000);
            var deadline = DateTime.UtcNow.AddSeconds(120);
            ScoresReport report;
            while ((report = Verify(kafka.BootstrapServers)).Uncovered > 0)
            {
                Assert.True(DateTime.UtcNow < deadline, string.Join("\n", ScoresVerifier.Describe(report)));
                await Task.Delay(500);
            }
            await a.DisposeAsync();
            report = Verify(kafka.BootstrapServers);
            Assert.True(report.Exact, string.Join("\n", ScoresVerifier.Describe(report)));
            Assert.Equal(12_000, report.Events);
        }
        finally
        {
            if (Directory.Exists(pool))
            {
                Directory.Delete(pool, recursive: true);
            }
        }
    }

    private static ScoresReport Verify(string bootstrapServers) =>
        ScoresVerifier.Verify(TimeProvider.System, new ConsumerConfig { BootstrapServers = bootstrapServers }, "scores", "scores.progress", "events", complete: true, TimeSpan.FromSeconds(60));

    private static async Task Produce(string bootstrapServers, SkewedStream stream, int from, int to)
    {
        var config = new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 2, EnableIdempotence = true, Partitioner = Partitioner.Murmur2Random };
        using var producer = new ProducerBuilder<string, byte[]>(config).Build();
        for (int i = from; i < to; i++)
        {
            var (entity, json) = stream.Events[i];
            await producer.ProduceAsync("events", new Message<string, byte[]> { Key = entity, Value = Encoding.UTF8.GetBytes(json) });
        }
    }
}

using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Inference.Client;
using Inference.Engine.Features;
using Inference.Engine.Hosting;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Engine.Pool;
using Inference.Proto.V1;
using Inference.Testing;
using Xunit.Abstractions;

namespace Inference.Engine.Tests;

/// <summary>
/// A pool answers as one node for every feature: two workers and a parameter server against a single
/// node in its own group, over a skewed stream that spans six times the longest window, with equal and
/// out-of-order event times (some later than the windows allow), partly a backlog read in large batches.
/// </summary>
public sealed class PoolFeatureTests(ITestOutputHelper output) : IDisposable
{
    private const int Partitions = 8;
    private const int Events = 12_000;
    private readonly string _root = Path.Combine(Path.GetTempPath(), "inference-pool-features-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Every_feature_and_score_from_either_worker_equals_one_nodes_and_still_does_after_partitions_move(bool requireCaughtUp)
    {
        Directory.CreateDirectory(_root);
        // The features `inference serve` ships with: 5-minute windows with a minute's lateness among them.
        string features = Path.Combine(_root, "features.json");
        var shipped = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Repository.HostSettings))!;
        File.WriteAllText(features, shipped["Inference"]!["Features"]!["Definitions"]!.ToJsonString());

        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        // 30 minutes of event time, three events per time, one in six up to 90 s behind the ones before it.
        var stream = SkewedStream.Create(Events, seed: 31, entities: 400, tickMs: 450, maxLagMs: 90_000);
        await Produce(kafka.BootstrapServers, stream, 0, 8_000);

        Dictionary<string, string?> Engine(string group)
        {
            var settings = EngineHarness.BaseSettings();
            settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
            settings["Inference:Kafka:GroupId"] = group;
            settings["Inference:Kafka:DeadLetterTopic"] = "";
            settings["Inference:Kafka:SessionTimeoutMs"] = "3000";
            settings["Inference:Training:Enabled"] = "false";
            settings["Inference:Features:File"] = features;
            return settings;
        }
        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps = await EngineHarness.StartAsync(psSettings);
        Dictionary<string, string?> Worker(string name)
        {
            var settings = Engine("pool");
            settings["Inference:Role"] = "Worker";
            settings["Inference:Sync:ParameterServer"] = ps.Address;
            settings["Inference:Sync:WorkerId"] = name;
            settings["Inference:Sync:IntervalMs"] = "300";
            settings["Inference:Checkpoints:Directory"] = Path.Combine(_root, "checkpoints");
            settings["Inference:Checkpoints:IntervalMs"] = "1000";
            settings["Inference:Serving:RequireCaughtUp"] = requireCaughtUp ? "true" : "false";
            return settings;
        }
        await using var reference = await EngineHarness.StartAsync(Engine("reference"));
        await using var w1 = await EngineHarness.StartAsync(Worker("w1"));
        EngineHarness? w2 = await EngineHarness.StartAsync(Worker("w2"));
        try
        {
            await EngineHarness.WaitUntil(() => w1.Get<PartitionOwnership>().Owned.Count > 0 && w2.Get<PartitionOwnership>().Owned.Count > 0,
                TimeSpan.FromSeconds(60), () => "both workers to own partitions");
            await Produce(kafka.BootstrapServers, stream, 8_000, Events);
            var ends = EndOffsets(kafka.BootstrapServers);

            string[] entities = [.. stream.Events.Select(e => e.Entity).Distinct().Order(StringComparer.Ordinal), "user-never-seen"];
            await Settled(reference, [w1, w2], ends);
            Assert.Equal(0, w1.Get<IngestMetrics>().MisroutedEvents + w2.Get<IngestMetrics>().MisroutedEvents + reference.Get<IngestMetrics>().MisroutedEvents);
            await Compare(reference, new() { ["w1"] = w1, ["w2"] = w2 }, entities, "two workers");

            // w2 stops: its partitions move to w1 (its checkpoint, then the rest of the partition replayed).
            // Meanwhile every row w1 answers without marking it catching up is already the single node's answer.
            var scoreRequest = new ScoreRequest();
            scoreRequest.Rows.Add(entities.Select(e => new ScoreRow { Entity = e }));
            var final = await new ScoringService.ScoringServiceClient(reference.Channel).ScoreAsync(scoreRequest);
            await w2.DisposeAsync();
            w2 = null;
            var (marked, answered, refused) = await DuringHandoff(new ScoringService.ScoringServiceClient(w1.Channel), scoreRequest, final, w1.Get<PartitionOwnership>());
            output.WriteLine($"during the handoff: {answered} responses, {marked} rows marked catching up, {refused} calls refused as not caught up");
            if (requireCaughtUp)
            {
                Assert.Equal(0, marked);
            }
            await EngineHarness.WaitUntil(() => w1.Get<PartitionOwnership>().Owned.Count == Partitions, TimeSpan.FromSeconds(60), () => "w1 to own every partition");
            await Settled(reference, [w1], ends);
            await Compare(reference, new() { ["w1"] = w1 }, entities, "after w2 stopped");
        }
        finally
        {
            if (w2 is not null)
            {
                await w2.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Events_keyed_by_another_partitioner_are_counted_and_the_pool_worker_says_it_is_not_ready()
    {
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps = await EngineHarness.StartAsync(psSettings);
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Role"] = "Worker";
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Kafka:GroupId"] = "pool";
        settings["Inference:Kafka:DeadLetterTopic"] = "";
        settings["Inference:Training:Enabled"] = "false";
        settings["Inference:Sync:ParameterServer"] = ps.Address;
        await using var worker = await EngineHarness.StartAsync(settings);
        await EngineHarness.WaitUntil(() => worker.Get<PartitionOwnership>().Owned.Count == Partitions, TimeSpan.FromSeconds(60), () => "the worker to own every partition");
        using var http = new HttpClient { BaseAddress = new Uri(worker.App.HttpAddress()!) };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("/readyz")).StatusCode);

        // librdkafka's own default partitioner (consistent_random: CRC32 of the key), not Kafka's murmur2.
        using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = kafka.BootstrapServers, Partitioner = Partitioner.ConsistentRandom }).Build();
        var stream = SkewedStream.Create(2_000, seed: 5, entities: 200);
        var delivered = await Task.WhenAll(stream.Events.Select(e => producer.ProduceAsync("events", new Message<string, byte[]> { Key = e.Entity, Value = Encoding.UTF8.GetBytes(e.Json) })));
        int misrouted = delivered.Count(d => KafkaPartitioner.PartitionOf(d.Message.Key, Partitions) != d.Partition.Value);
        Assert.True(misrouted > 1_000, $"only {misrouted} of 2,000 events landed elsewhere than murmur2 puts them");

        await worker.WaitTakenAsync(new Taken(2_000));
        Assert.Equal(misrouted, worker.Get<IngestMetrics>().MisroutedEvents);
        var ready = await http.GetAsync("/readyz");
        string reason = await ready.Content.ReadAsStringAsync();
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains("murmur2_random", reason);
        var health = await new Grpc.Health.V1.Health.HealthClient(worker.Channel).CheckAsync(new Grpc.Health.V1.HealthCheckRequest());
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.NotServing, health.Status);
        output.WriteLine($"{misrouted} misrouted events; /readyz: {reason}");
    }

    /// <summary>
    /// Scores every entity on <paramref name="worker"/> again and again until it owns every partition and no row is
    /// marked catching up: each unmarked row must already equal the single node's final score.
    /// </summary>
    private static async Task<(int Marked, int Answered, int Refused)> DuringHandoff(ScoringService.ScoringServiceClient worker, ScoreRequest request, ScoreResponse final, PartitionOwnership ownership)
    {
        int marked = 0, answered = 0, refused = 0;
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            ScoreResponse response;
            try
            {
                response = await worker.ScoreAsync(request);
            }
            catch (Grpc.Core.RpcException error) when (error.StatusCode == Grpc.Core.StatusCode.Unavailable)
            {
                // Rows forwarded to the worker that left, before the group moved its partitions; or, with
                // RequireCaughtUp, rows of partitions still being restored, named.
                if (error.Status.Detail.StartsWith("Not caught up (Inference:Serving:RequireCaughtUp): ", StringComparison.Ordinal))
                {
                    Assert.Contains("partition ", error.Status.Detail);
                    refused++;
                }
                await Task.Delay(20);
                continue;
            }
            answered++;
            int catchingUp = 0;
            for (int r = 0; r < request.Rows.Count; r++)
            {
                if (response.Origins[r].CatchingUp)
                {
                    catchingUp++;
                    continue;
                }
                Assert.True(Close(final.Scores[r], response.Scores[r]),
                    $"{request.Rows[r].Entity} (partition {response.Origins[r].Partition}, applied to offset {response.Origins[r].LastAppliedOffset}) scored {response.Scores[r]} unmarked, finally {final.Scores[r]}");
            }
            marked += catchingUp;
            if (catchingUp == 0 && ownership.Owned.Count == Partitions)
            {
                return (marked, answered, refused);
            }
        }
        throw new TimeoutException("the worker never owned every partition caught up");
    }

    /// <summary>Waits until the workers between them, and the single node, applied every event, and the workers read as of the single node's newest event time.</summary>
    private static async Task Settled(EngineHarness reference, EngineHarness[] workers, IReadOnlyList<PartitionOffset> ends)
    {
        bool Applied(EngineHarness engine, PartitionOffset end) => engine.Get<DeviceExecutor>().Watermark.Covers([end]);
        await EngineHarness.WaitUntil(() => ends.All(end => Applied(reference, end)), TimeSpan.FromSeconds(120), () => "the single node to apply every event");
        await EngineHarness.WaitUntil(() => ends.All(end => workers.Any(w => Applied(w, end))), TimeSpan.FromSeconds(120),
            () => "the workers to apply every event between them");
        // Each worker knows who owns every partition (its own, or another's as the pool announced it).
        bool Mapped(EngineHarness worker) => Enumerable.Range(0, Partitions)
            .All(p => worker.Get<PartitionOwnership>().Owns(p) || worker.Get<PoolMembership>().RemoteOwner(p) is not null);
        await EngineHarness.WaitUntil(() => workers.All(Mapped), TimeSpan.FromSeconds(10), () => "the workers to know the owner of every partition");
        long newest = reference.Get<DeviceExecutor>().Watermark.MaxEventTimeMs;
        // Within one announcement each worker learns the pool's newest event time.
        await EngineHarness.WaitUntil(() => workers.All(w => w.Get<DeviceExecutor>().AsOf(w.Get<DeviceExecutor>().Watermark) == newest), TimeSpan.FromSeconds(10),
            () => $"the workers to read as of {newest} (the single node's newest event)");
    }

    /// <summary>One read of every entity's features and score from each worker, against the single node's: equal within 1e-6 (relative above 1).</summary>
    private async Task Compare(EngineHarness reference, Dictionary<string, EngineHarness> workers, string[] entities, string when)
    {
        var featuresRequest = new GetFeaturesRequest();
        featuresRequest.Entities.Add(entities);
        var scoreRequest = new ScoreRequest();
        scoreRequest.Rows.Add(entities.Select(e => new ScoreRow { Entity = e }));
        var expected = await new ScoringService.ScoringServiceClient(reference.Channel).GetFeaturesAsync(featuresRequest);
        var expectedScores = await new ScoringService.ScoringServiceClient(reference.Channel).ScoreAsync(scoreRequest);
        Assert.True(expected.Entities.Count(e => e.Found) == entities.Length - 1, $"{when}: the single node holds {expected.Entities.Count(e => e.Found)} of {entities.Length - 1} entities");
        var differences = new List<string>();
        foreach (var (name, worker) in workers)
        {
            var client = new ScoringService.ScoringServiceClient(worker.Channel);
            var actual = await client.GetFeaturesAsync(featuresRequest);
            var scores = await client.ScoreAsync(scoreRequest);
            Assert.Equal(expected.FeatureNames, actual.FeatureNames);
            for (int r = 0; r < entities.Length; r++)
            {
                var want = expected.Entities[r];
                var got = actual.Entities[r];
                Assert.Equal(want.Entity, got.Entity);
                if (want.Found != got.Found)
                {
                    differences.Add($"via {name}: {want.Entity} found {got.Found}, on one node {want.Found}");
                    continue;
                }
                for (int f = 0; f < want.Values.Count; f++)
                {
                    if (!Close(want.Values[f], got.Values[f]))
                    {
                        differences.Add($"via {name}: {want.Entity} {expected.FeatureNames[f]} {got.Values[f].ToString("R", CultureInfo.InvariantCulture)}, on one node {want.Values[f].ToString("R", CultureInfo.InvariantCulture)}");
                    }
                }
                if (!Close(expectedScores.Scores[r], scores.Scores[r]))
                {
                    differences.Add($"via {name}: {want.Entity} scores {scores.Scores[r]}, on one node {expectedScores.Scores[r]}");
                }
            }
        }
        output.WriteLine($"{when}: {entities.Length} entities from {workers.Count} worker(s), {differences.Count} differences");
        Assert.True(differences.Count == 0, $"{when}: {differences.Count} differences, first: {string.Join("; ", differences.Take(12))}");
    }

    private static bool Close(double expected, double actual) => Math.Abs(expected - actual) <= 1e-6 * Math.Max(1, Math.Abs(expected));

    private static List<PartitionOffset> EndOffsets(string bootstrapServers)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = "end-offsets" }).Build();
        return [.. Enumerable.Range(0, Partitions)
            .Select(p => (Partition: p, High: consumer.QueryWatermarkOffsets(new TopicPartition("events", p), TimeSpan.FromSeconds(10)).High.Value))
            .Where(p => p.High > 0)
            .Select(p => new PartitionOffset("events", p.Partition, p.High - 1))];
    }

    private static async Task Produce(string bootstrapServers, SkewedStream stream, int from, int to)
    {
        // Keyed with Kafka's default partitioner (murmur2), as the README asks of producers.
        var config = new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 5, EnableIdempotence = true, Partitioner = Partitioner.Murmur2Random };
        using var producer = new ProducerBuilder<string, byte[]>(config).Build();
        var pending = new List<Task>(to - from);
        for (int i = from; i < to; i++)
        {
            var (entity, json) = stream.Events[i];
            pending.Add(producer.ProduceAsync("events", new Message<string, byte[]> { Key = entity, Value = Encoding.UTF8.GetBytes(json) }));
        }
        await Task.WhenAll(pending);
    }
}

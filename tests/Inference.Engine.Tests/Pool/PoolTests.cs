using System.Diagnostics;
using Confluent.Kafka;
using Inference.Client;
using Inference.Demo;
using Inference.Engine.Kafka;
using Inference.Engine.Pool;
using Inference.Engine.Serving;
using Inference.Proto.V1;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Tests;

/// <summary>Workers of one pool: one consumer group on the events topic, labels co-partitioned with it.</summary>
public sealed class PoolTests
{
    private const int Partitions = 4;

    /// <summary>Labels keep flowing while a worker joins: a burst every this long (a scenario parameter, not a wait).</summary>
    private static readonly TimeSpan LabelBurstGap = TimeSpan.FromMilliseconds(50);

    internal static Dictionary<string, string?> PoolWorker(EmbeddedKafka kafka, string parameterServer, string name)
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Role"] = "Worker";
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Kafka:GroupId"] = "pool";
        settings["Inference:Kafka:DeadLetterTopic"] = "";
        settings["Inference:Kafka:LabelsDeadLetterTopic"] = "";
        settings["Inference:Kafka:SessionTimeoutMs"] = "3000";
        settings["Inference:Training:BatchSize"] = "1";
        settings["Inference:Sync:ParameterServer"] = parameterServer;
        settings["Inference:Sync:WorkerId"] = name;
        return settings;
    }

    /// <summary>Features read as of the newest event time (the pool's, for a worker): a shift of it shows in the scores.</summary>
    private static readonly (string, string, string?, string?)[] TimeRelative =
        [("count", "Count", null, null), ("amount_mean", "Mean", "amount", null), ("idle_ms", "TimeSinceLast", null, null)];

    private static EmbeddedKafka CoPartitioned()
    {
        var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        kafka.CreateTopic("labels", Partitions);
        return kafka;
    }

    private static Task<EngineHarness> ParameterServer()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Role"] = "Ps";
        return EngineHarness.StartAsync(settings);
    }

    [Fact]
    public async Task Each_worker_learns_the_labels_of_the_partitions_it_owns_and_its_watermark_lists_only_those()
    {
        using var kafka = CoPartitioned();
        await using var ps = await ParameterServer();
        await using var a = await EngineHarness.StartAsync(PoolWorker(kafka, ps.Address, "a"));
        await using var b = await EngineHarness.StartAsync(PoolWorker(kafka, ps.Address, "b"));
        // A third member that serves but does not train: the events group has three members, and a labels
        // group of its own would have two, so only following the events assignment gives each trainer its own partitions' labels.
        var serving = PoolWorker(kafka, ps.Address, "c");
        serving["Inference:Training:Enabled"] = "false";
        await using var c = await EngineHarness.StartAsync(serving);
        var ownedA = a.Get<PartitionOwnership>();
        var ownedB = b.Get<PartitionOwnership>();
        var ownedC = c.Get<PartitionOwnership>();
        await EngineHarness.WaitUntil(() => ownedA.Owned.Count > 0 && ownedB.Owned.Count > 0 && ownedC.Owned.Count > 0 && ownedA.Owned.Count + ownedB.Owned.Count + ownedC.Owned.Count == Partitions,
            TimeSpan.FromSeconds(60), () => $"the group to split the {Partitions} partitions (a: {string.Join(",", ownedA.Owned)}; b: {string.Join(",", ownedB.Owned)}; c: {string.Join(",", ownedC.Owned)})");
        Assert.Empty(ownedA.Owned.Intersect(ownedB.Owned).Intersect(ownedC.Owned));

        // Events and labels keyed by entity with the same producer: a label lands in its entity's partition number.
        var stream = new SyntheticStream(entities: 60, seed: 8);
        var labelsPerPartition = new int[Partitions];
        var eventsPerPartition = new int[Partitions];
        using (var producer = EngineHarness.Producer(kafka.BootstrapServers))
        {
            var sent = new List<Task<DeliveryResult<string, byte[]>>>();
            for (int i = 0; i < 600; i++)
            {
                var e = stream.NextEvent();
                sent.Add(producer.ProduceAsync("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json }));
            }
            foreach (var result in await Task.WhenAll(sent))
            {
                eventsPerPartition[result.Partition.Value]++;
            }
            sent.Clear();
            for (int i = 0; i < 200; i++)
            {
                int entity = stream.NextEntity();
                sent.Add(producer.ProduceAsync("labels", new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json }));
            }
            foreach (var result in await Task.WhenAll(sent))
            {
                labelsPerPartition[result.Partition.Value]++;
            }
        }
        int expectA = ownedA.Owned.Sum(p => labelsPerPartition[p]);
        int expectB = ownedB.Owned.Sum(p => labelsPerPartition[p]);
        await EngineHarness.WaitUntil(() => a.Metrics.LabelsTrained == expectA && b.Metrics.LabelsTrained == expectB, TimeSpan.FromSeconds(60),
            () => $"each worker to learn its partitions' labels (a {a.Metrics.LabelsTrained} of {expectA}, b {b.Metrics.LabelsTrained} of {expectB})");
        await EngineHarness.WaitUntil(() => a.Metrics.EventsApplied == ownedA.Owned.Sum(p => eventsPerPartition[p]) && b.Metrics.EventsApplied == ownedB.Owned.Sum(p => eventsPerPartition[p]),
            TimeSpan.FromSeconds(60), () => "each worker to apply its partitions' events");
        // Past a barrier on the learners' label partitions: a label learned twice would be counted by now.
        await Streams.BarrierAsync(kafka.BootstrapServers, "labels", [.. ownedA.Owned, .. ownedB.Owned], () => a.Metrics.MalformedLabels + b.Metrics.MalformedLabels);
        Assert.Equal(expectA, a.Metrics.LabelsTrained);
        Assert.Equal(expectB, b.Metrics.LabelsTrained);
        Assert.True(expectA + expectB < 200, "the serving-only member's partitions hold labels nobody else learns");

        // Each worker's own state (read through one of its own entities: GetFeatures, like Score, routes the others) reports the owned partitions only.
        foreach (var (worker, owned) in new[] { (a, ownedA), (b, ownedB), (c, ownedC) })
        {
            string own = Enumerable.Range(0, 60).Select(stream.Key).First(key => owned.Owned.Contains(KafkaPartitioner.PartitionOf(key, Partitions)));
            var response = await new ScoringService.ScoringServiceClient(worker.Channel).GetFeaturesAsync(new GetFeaturesRequest { Entities = { own } });
            Assert.Equal(owned.Owned, response.Watermark.Partitions.Where(p => p.Topic == "events").Select(p => p.Partition).Order());
        }
    }

    [Fact]
    public async Task Any_worker_scores_any_entity_as_a_single_node_would_forwarding_rows_to_their_owners()
    {
        using var kafka = CoPartitioned();
        await using var ps = await ParameterServer();
        Dictionary<string, string?> Serving(Dictionary<string, string?> settings)
        {
            // The model stays the seeded one everywhere: scores differ only if the features do.
            settings["Inference:Training:Enabled"] = "false";
            return settings;
        }
        await using var a = await EngineHarness.StartAsync(Serving(PoolWorker(kafka, ps.Address, "a")));
        await using var b = await EngineHarness.StartAsync(Serving(PoolWorker(kafka, ps.Address, "b")));
        var single = EngineHarness.BaseSettings();
        single["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        single["Inference:Kafka:GroupId"] = "reference";
        single["Inference:Kafka:DeadLetterTopic"] = "";
        await using var reference = await EngineHarness.StartAsync(Serving(single));

        const int Events = 3_000;
        var stream = new SyntheticStream(entities: 80, seed: 21);
        using (var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = kafka.BootstrapServers, Partitioner = Partitioner.Murmur2Random }).Build())
        {
            var sent = new List<(string Key, Task<DeliveryResult<string, byte[]>> Result)>();
            for (int i = 0; i < Events; i++)
            {
                var e = stream.NextEvent();
                string key = stream.Key(e.Entity);
                sent.Add((key, producer.ProduceAsync("events", new Message<string, byte[]> { Key = key, Value = e.Json })));
            }
            // The engine's partitioner is librdkafka's murmur2_random (Kafka's default): the same partition for every key.
            foreach (var (key, result) in sent)
            {
                Assert.Equal((await result).Partition.Value, KafkaPartitioner.PartitionOf(key, Partitions));
            }
        }
        await EngineHarness.WaitUntil(() => a.Metrics.EventsApplied + b.Metrics.EventsApplied == Events && reference.Metrics.EventsApplied == Events,
            TimeSpan.FromSeconds(60), () => $"every event applied in the pool and in the reference (a {a.Metrics.EventsApplied}, b {b.Metrics.EventsApplied}, reference {reference.Metrics.EventsApplied})");
        var poolA = a.Get<ScoreRouter>().Pool;
        var poolB = b.Get<ScoreRouter>().Pool;
        var ownedA = a.Get<PartitionOwnership>();
        var ownedB = b.Get<PartitionOwnership>();
        await EngineHarness.WaitUntil(() => Enumerable.Range(0, Partitions).All(p =>
                (ownedA.Owns(p) || poolA.RemoteOwner(p)?.WorkerId == "b") && (ownedB.Owns(p) || poolB.RemoteOwner(p)?.WorkerId == "a")),
            TimeSpan.FromSeconds(30), () => "each worker to know the other's partitions");
        Assert.True(ownedA.Owned.Count > 0 && ownedB.Owned.Count > 0);

        var request = new ScoreRequest();
        for (int entity = 0; entity < 80; entity++)
        {
            request.Rows.Add(new ScoreRow { Entity = stream.Key(entity), RequestId = $"r{entity}" });
        }
        var expected = await new ScoringService.ScoringServiceClient(reference.Channel).ScoreAsync(request);
        foreach (var (worker, name) in new[] { (a, "a"), (b, "b") })
        {
            var response = await new ScoringService.ScoringServiceClient(worker.Channel).ScoreAsync(request);
            Assert.Equal(request.Rows.Select(r => r.RequestId), response.RequestIds);
            Assert.Equal(80, response.Origins.Count);
            for (int r = 0; r < 80; r++)
            {
                Assert.True(Math.Abs(expected.Scores[r] - response.Scores[r]) <= 1e-6, $"row {r} via {name}: {response.Scores[r]} against the single node's {expected.Scores[r]}");
                var origin = response.Origins[r];
                int partition = KafkaPartitioner.PartitionOf(request.Rows[r].Entity, Partitions);
                Assert.Equal(partition, origin.Partition);
                Assert.Equal(ownedA.Owns(partition) ? "a" : "b", origin.WorkerId);
                Assert.True(origin.LastAppliedOffset >= 0, $"row {r}: the owner has applied partition {partition}");
            }
        }
        long forwarded = a.Get<ServingMetrics>().ForwardedRows + b.Get<ServingMetrics>().ForwardedRows;
        Assert.True(forwarded > 0, "rows were forwarded to their owners");

        // The C# client's routing option sends each row straight to its owner: the same answers, no forwarding.
        using var client = new PoolScoringClient(ps.Address);
        var routed = await client.ScoreAsync(request);
        Assert.Equal(request.Rows.Select(r => r.RequestId), routed.RequestIds);
        for (int r = 0; r < 80; r++)
        {
            Assert.True(Math.Abs(expected.Scores[r] - routed.Scores[r]) <= 1e-6, $"row {r} through the routing client: {routed.Scores[r]} against {expected.Scores[r]}");
            Assert.Equal(ownedA.Owns(routed.Origins[r].Partition) ? "a" : "b", routed.Origins[r].WorkerId);
        }
        Assert.Equal(forwarded, a.Get<ServingMetrics>().ForwardedRows + b.Get<ServingMetrics>().ForwardedRows);
    }

    [Fact]
    public async Task When_partitions_move_to_a_joining_worker_it_learns_none_of_the_labels_their_owner_learned()
    {
        using var kafka = CoPartitioned();
        await using var ps = await ParameterServer();
        string pool = Path.Combine(Path.GetTempPath(), "inference-pool-" + Guid.NewGuid().ToString("N"));
        Dictionary<string, string?> Member(string name)
        {
            var settings = PoolWorker(kafka, ps.Address, name);
            settings["Inference:Checkpoints:Directory"] = pool;
            // No periodic checkpoint meanwhile: what the first owner learned is in its hand-over checkpoint only.
            settings["Inference:Checkpoints:IntervalMs"] = "600000";
            return settings;
        }
        try
        {
            await using var a = await EngineHarness.StartAsync(Member("a"));
            var ownedA = a.Get<PartitionOwnership>();
            await EngineHarness.WaitUntil(() => ownedA.Owned.Count == Partitions, TimeSpan.FromSeconds(60), () => "a to own every partition");
            var stream = new SyntheticStream(entities: 60, seed: 21);
            using var producer = EngineHarness.Producer(kafka.BootstrapServers);
            void Labels(int count)
            {
                for (int i = 0; i < count; i++)
                {
                    int entity = stream.NextEntity();
                    producer.Produce("labels", new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json });
                }
                producer.FlushAll();
            }
            Labels(300);
            await a.WaitTakenAsync(new Taken(0, Labels: 300));

            // b joins while labels flow: some of a's partitions move to it as a goes on learning. b must start after
            // the labels a learned, a must learn none of theirs after handing them over.
            var flowing = Task.Run(async () =>
            {
                for (int burst = 0; burst < 40; burst++)
                {
                    Labels(5);
                    await Task.Delay(LabelBurstGap);
                }
            });
            await using var b = await EngineHarness.StartAsync(Member("b"));
            var ownedB = b.Get<PartitionOwnership>();
            await EngineHarness.WaitUntil(() => ownedA.Owned.Count > 0 && ownedB.Owned.Count > 0 && ownedA.Owned.Count + ownedB.Owned.Count == Partitions,
                TimeSpan.FromSeconds(60), () => "the partitions split between a and b");
            await flowing;
            Labels(200);
            await EngineHarness.WaitUntil(() => a.Metrics.LabelsTrained + b.Metrics.LabelsTrained >= 700, TimeSpan.FromSeconds(60),
                () => $"the new labels learned (a {a.Metrics.LabelsTrained}, b {b.Metrics.LabelsTrained})");
            // Past a barrier on every labels partition: a label learned twice would be counted by now.
            await Streams.BarrierAsync(kafka.BootstrapServers, "labels", Enumerable.Range(0, Partitions), () => a.Metrics.MalformedLabels + b.Metrics.MalformedLabels);
            Assert.Equal(700, a.Metrics.LabelsTrained + b.Metrics.LabelsTrained);
            Assert.True(b.Metrics.LabelsTrained > 0, "b learned the new labels of its partitions");
        }
        finally
        {
            if (Directory.Exists(pool))
            {
                Directory.Delete(pool, recursive: true);
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task When_a_worker_stops_its_partitions_move_and_their_entities_score_exactly_as_before(bool sharedCheckpoints)
    {
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        kafka.CreateTopic("labels", Partitions);
        string pool = Path.Combine(Path.GetTempPath(), "inference-pool-" + Guid.NewGuid().ToString("N"));
        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        // A stopped worker leaves the pool's map soon: the test then sees the pool without it.
        psSettings["Inference:Sync:MemberTimeoutMs"] = "1500";
        await using var ps = await EngineHarness.StartAsync(psSettings);
        var registry = new ParameterService.ParameterServiceClient(ps.Channel);
        Dictionary<string, string?> Member(string name)
        {
            var settings = PoolWorker(kafka, ps.Address, name);
            settings["Inference:Training:Enabled"] = "false";
            EngineHarness.Declare(settings, TimeRelative);
            if (sharedCheckpoints)
            {
                settings["Inference:Checkpoints:Directory"] = pool;
                settings["Inference:Checkpoints:IntervalMs"] = "1000";
            }
            return settings;
        }
        try
        {
            await using var a = await EngineHarness.StartAsync(Member("a"));
            var b = await EngineHarness.StartAsync(Member("b"));
            var single = EngineHarness.BaseSettings();
            single["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
            single["Inference:Kafka:GroupId"] = "reference";
            single["Inference:Kafka:DeadLetterTopic"] = "";
            single["Inference:Training:Enabled"] = "false";
            EngineHarness.Declare(single, TimeRelative);
            await using var reference = await EngineHarness.StartAsync(single);
            var ownedA = a.Get<PartitionOwnership>();
            var ownedB = b.Get<PartitionOwnership>();
            await EngineHarness.WaitUntil(() => ownedA.Owned.Count > 0 && ownedB.Owned.Count > 0, TimeSpan.FromSeconds(60), () => "both workers to own partitions");

            var stream = new SyntheticStream(entities: 80, seed: 33);
            using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = kafka.BootstrapServers, Partitioner = Partitioner.Murmur2Random, LingerMs = 2 }).Build();
            var perPartition = new long[Partitions];
            void Produce(int events)
            {
                for (int i = 0; i < events; i++)
                {
                    var e = stream.NextEvent();
                    string key = stream.Key(e.Entity);
                    perPartition[KafkaPartitioner.PartitionOf(key, Partitions)]++;
                    producer.Produce("events", new Message<string, byte[]> { Key = key, Value = e.Json });
                }
                producer.FlushAll();
            }
            Produce(2_000);
            // The newest event time of the stream in one of b's partitions: once b has left the pool's map, a
            // still reads time-relative features as of it (as the single node does).
            int late = Enumerable.Range(0, 80).First(e => ownedB.Owned.Contains(KafkaPartitioner.PartitionOf(stream.Key(e), Partitions)));
            for (int i = 0; i < 5; i++)
            {
                var e = stream.NextEvent(late);
                perPartition[KafkaPartitioner.PartitionOf(stream.Key(late), Partitions)]++;
                producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(late), Value = e.Json });
            }
            producer.FlushAll();
            await EngineHarness.WaitUntil(() => a.Metrics.EventsApplied + b.Metrics.EventsApplied == 2_005 && reference.Metrics.EventsApplied == 2_005,
                TimeSpan.FromSeconds(60), () => "every event applied");

            var request = new ScoreRequest();
            for (int entity = 0; entity < 80; entity++)
            {
                request.Rows.Add(new ScoreRow { Entity = stream.Key(entity) });
            }
            var fromA = new ScoringService.ScoringServiceClient(a.Channel);
            var fromReference = new ScoringService.ScoringServiceClient(reference.Channel);
            async Task<string?> Differs()
            {
                var expected = await fromReference.ScoreAsync(request);
                var actual = await fromA.ScoreAsync(request);
                for (int r = 0; r < 80; r++)
                {
                    if (Math.Abs(expected.Scores[r] - actual.Scores[r]) > 1e-6)
                    {
                        return $"row {r} (partition {actual.Origins[r].Partition}, worker {actual.Origins[r].WorkerId}): {actual.Scores[r]} against {expected.Scores[r]}";
                    }
                }
                return null;
            }
            // Within a bound: the time the workers take to learn each other's partitions (one announcement).
            async Task<string?> Agree()
            {
                string? difference = "not checked yet";
                var deadline = DateTime.UtcNow.AddSeconds(30);
                while (DateTime.UtcNow < deadline && (difference = await Differs()) is not null)
                {
                    await Task.Delay(100);
                }
                return difference;
            }
            Assert.Null(await Agree());
            var moving = ownedB.Owned.ToList();
            long appliedByA = a.Metrics.EventsApplied;

            // b stops gracefully: its partitions move to a, whose answers for b's entities must not change.
            await b.DisposeAsync();
            await EngineHarness.WaitUntil(() => ownedA.Owned.Count == Partitions, TimeSpan.FromSeconds(60), () => "a to own every partition");
            Assert.Null(await Agree());
            // And once b is out of the pool's map and a has announced since: still the same answers.
            var alone = Stopwatch.StartNew();
            await EngineHarness.WaitUntil(() => registry.Members(new MembersRequest()).Members.Count == 1, TimeSpan.FromSeconds(30), () => "b to leave the pool's map");
            alone.Restart();
            await EngineHarness.WaitUntil(() => registry.Members(new MembersRequest()).Members.Single().AnnouncedMsAgo < alone.ElapsedMilliseconds,
                TimeSpan.FromSeconds(30), () => "a to announce once b has left the map");
            Assert.Null(await Differs());
            long replayed = a.Metrics.EventsApplied - appliedByA;
            if (sharedCheckpoints)
            {
                // Taken from the checkpoint b handed over: nothing of b's partitions was read again; it holds
                // each partition's entities in a file of its own (a taker reads only its share).
                Assert.Equal(0, replayed);
                var handedOver = Engine.Checkpoints.CheckpointFiles.List(Path.Combine(pool, "b"))[^1].Manifest!.Table;
                Assert.Equal(Partitions, handedOver.SegmentPartitions);
                Assert.Equal(moving.Order(), handedOver.Segments!.Select(s => s.Partition).Order());
            }
            else
            {
                // No checkpoints: a rebuilt b's partitions from the start of the topic.
                Assert.Equal(moving.Sum(p => perPartition[p]), replayed);
            }

            // And it goes on like the single node.
            Produce(1_000);
            await EngineHarness.WaitUntil(() => reference.Metrics.EventsApplied == 3_005 && a.Metrics.EventsApplied - replayed == 3_005 - (2_005 - appliedByA),
                TimeSpan.FromSeconds(60), () => $"the new events applied (a {a.Metrics.EventsApplied}, reference {reference.Metrics.EventsApplied})");
            Assert.Null(await Agree());
        }
        finally
        {
            if (Directory.Exists(pool))
            {
                Directory.Delete(pool, recursive: true);
            }
        }
    }

    [Fact]
    public async Task A_worker_whose_labels_are_not_co_partitioned_with_its_events_does_not_start()
    {
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        kafka.CreateTopic("labels", Partitions - 1);
        await using var ps = await ParameterServer();
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(PoolWorker(kafka, ps.Address, "a")));
        Assert.Contains("Inference:Kafka:LabelsTopic", error.Message);
        Assert.Contains("co-partitioned", error.Message);
    }
}

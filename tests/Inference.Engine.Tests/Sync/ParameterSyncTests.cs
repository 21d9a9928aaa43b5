using Confluent.Kafka;
using Inference.Demo;
using Inference.Engine.Kafka;
using Inference.Engine.Sync;
using Inference.Models.Parameters;
using Inference.Models.Registry;

namespace Inference.Engine.Tests;

/// <summary>Two workers and one parameter server, each a real host on its own loopback port.</summary>
public sealed class ParameterSyncTests
{
    [Fact]
    public async Task After_a_sync_both_workers_hold_the_servers_parameters()
    {
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels-a", "labels-b" })
        {
            kafka.CreateTopic(topic, 2);
        }

        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps = await EngineHarness.StartAsync(psSettings);

        await using var a = await EngineHarness.StartAsync(Worker(kafka, ps.Address, "a"));
        await using var b = await EngineHarness.StartAsync(Worker(kafka, ps.Address, "b"));
        var shard = ps.Get<ParameterShard>();

        // Both workers learn from different labels, so each pushes its own deltas.
        ProduceForTwoWorkers(kafka, seed: 99);
        await EngineHarness.WaitUntil(() => a.Metrics.LabelsTrained == 200 && b.Metrics.LabelsTrained == 200, TimeSpan.FromSeconds(60),
            () => $"200 labels trained by each worker (a {a.Metrics.LabelsTrained}, b {b.Metrics.LabelsTrained})");

        // Once both have pushed what they learned and pulled again, each holds exactly the shard's parameters.
        var registryA = a.Get<ModelRegistry>();
        var registryB = b.Get<ModelRegistry>();
        await EngineHarness.WaitUntil(() =>
            {
                var (_, merged) = shard.Current;
                return merged is not null
                    && registryA.CurrentParameters().ApproximatelyEquals(merged)
                    && registryB.CurrentParameters().ApproximatelyEquals(merged);
            },
            TimeSpan.FromSeconds(30), () => "both workers' published parameters to equal the parameter server's");

        var (version, parameters) = shard.Current;
        Assert.True(version > 2, $"shard version {version}: expected the initial version plus pushes from both workers");
        Assert.True(a.Metrics.SyncRounds > 0 && b.Metrics.SyncRounds > 0);
        // The merged model is not the initial one: the workers' learning reached it.
        using var initial = new ModelRegistry(registryA.Spec);
        Assert.False(initial.CurrentParameters().ApproximatelyEquals(parameters!, 1e-4f));
    }

    [Fact]
    public async Task Three_workers_standardise_as_one_node_that_saw_every_label()
    {
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels-a", "labels-b", "labels-c", "labels-all" })
        {
            kafka.CreateTopic(topic, 2);
        }
        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps = await EngineHarness.StartAsync(psSettings);

        static Dictionary<string, string?> Publishing(Dictionary<string, string?> settings)
        {
            settings["Inference:Training:PublishIntervalMs"] = "50";
            return settings;
        }
        await using var single = await EngineHarness.StartAsync(Publishing(Member(kafka, "single", "labels-all")));
        await using var a = await EngineHarness.StartAsync(Publishing(Worker(kafka, ps.Address, "a")));
        await using var b = await EngineHarness.StartAsync(Publishing(Worker(kafka, ps.Address, "b")));
        await using var c = await EngineHarness.StartAsync(Publishing(Worker(kafka, ps.Address, "c")));
        EngineHarness[] workers = [a, b, c];

        // Every engine applies every event before any label: each label's features are the same everywhere.
        var stream = new SyntheticStream(entities: 60, seed: 5);
        using var producer = EngineHarness.Producer(kafka.BootstrapServers);
        for (int i = 0; i < 3_000; i++)
        {
            var e = stream.NextEvent();
            producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
        }
        producer.FlushAll();
        await EngineHarness.WaitUntil(() => workers.Append(single).All(w => w.Metrics.EventsApplied == 3_000), TimeSpan.FromSeconds(60), () => "3,000 events applied everywhere");
        // Labels spread unevenly: the workers' statistics differ, so a plain sum or mean of their standardisation would not do.
        const int Labels = 900;
        var counts = new Dictionary<string, int> { ["a"] = 0, ["b"] = 0, ["c"] = 0 };
        for (int i = 0; i < Labels; i++)
        {
            int entity = stream.NextEntity();
            string worker = i % 6 < 3 ? "a" : i % 6 < 5 ? "b" : "c";
            counts[worker]++;
            var label = stream.NextLabel(entity).Json;
            producer.Produce($"labels-{worker}", new Message<string, byte[]> { Key = stream.Key(entity), Value = label });
            producer.Produce("labels-all", new Message<string, byte[]> { Key = stream.Key(entity), Value = label });
        }
        producer.FlushAll();
        await EngineHarness.WaitUntil(() => single.Metrics.LabelsTrained == Labels && a.Metrics.LabelsTrained == counts["a"] && b.Metrics.LabelsTrained == counts["b"]
            && c.Metrics.LabelsTrained == counts["c"], TimeSpan.FromSeconds(60), () => "every label trained");
        long rounds = workers.Min(w => w.Metrics.SyncRounds);
        await EngineHarness.WaitUntil(() => workers.All(w => w.Metrics.SyncRounds >= rounds + 5), TimeSpan.FromSeconds(60), () => "5 more sync rounds on every worker");

        var reference = single.Get<ModelRegistry>().CurrentParameters();
        // A standardisation that learning moved (not the identity every model starts with).
        Assert.Contains(reference.Find(Models.ScoringModule.InputMeanName)!.Values, v => Math.Abs(v) > 0.01);
        var sources = new[] { ("a", a.Get<ModelRegistry>().CurrentParameters()), ("b", b.Get<ModelRegistry>().CurrentParameters()),
            ("c", c.Get<ModelRegistry>().CurrentParameters()), ("the parameter server", ps.Get<ParameterShard>().Current.Parameters!) };
        foreach (var (name, published) in sources)
        {
            foreach (string tensor in new[] { Models.ScoringModule.InputMeanName, Models.ScoringModule.InputScaleName })
            {
                var expected = reference.Find(tensor)!.Values;
                var actual = published.Find(tensor)!.Values;
                for (int i = 0; i < expected.Length; i++)
                {
                    Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4 * Math.Max(1, Math.Abs(expected[i])),
                        $"{name}: {tensor}[{i}] {actual[i]:R}, one node over every label: {expected[i]:R}");
                }
            }
        }
    }

    [Fact]
    public async Task With_two_parameter_server_shards_each_holds_its_tensors_and_the_workers_hold_their_union()
    {
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels-a", "labels-b" })
        {
            kafka.CreateTopic(topic, 2);
        }
        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps0 = await EngineHarness.StartAsync(psSettings);
        await using var ps1 = await EngineHarness.StartAsync(psSettings);
        Dictionary<string, string?> Sharded(string name)
        {
            var settings = Worker(kafka, $"{ps0.Address},{ps1.Address}", name);
            settings["Inference:Model:Kind"] = "Mlp";
            settings["Inference:Model:Hidden"] = "8";
            // The hidden layer's 8 x 7 weights cut into ranges of 2 rows, spread over both shards.
            settings["Inference:Sync:MaxTensorPartValues"] = "14";
            return settings;
        }
        await using var a = await EngineHarness.StartAsync(Sharded("a"));
        await using var b = await EngineHarness.StartAsync(Sharded("b"));

        ProduceForTwoWorkers(kafka, seed: 5);
        await EngineHarness.WaitUntil(() => a.Metrics.LabelsTrained == 200 && b.Metrics.LabelsTrained == 200, TimeSpan.FromSeconds(60), () => "200 labels trained by each worker");

        var registryA = a.Get<ModelRegistry>();
        var placement = new ParameterPlacement(2, 14);
        ParameterSet? Union()
        {
            var (_, zero) = ps0.Get<ParameterShard>().Current;
            var (_, one) = ps1.Get<ParameterShard>().Current;
            return zero is null || one is null ? null : placement.Join(registryA.CurrentParameters(), [zero, one]);
        }
        await EngineHarness.WaitUntil(() => Union() is { } union
                && registryA.CurrentParameters().ApproximatelyEquals(union)
                && b.Get<ModelRegistry>().CurrentParameters().ApproximatelyEquals(union),
            TimeSpan.FromSeconds(30), () => "both workers to hold the union of the shards' parameters");
        var held = new[] { ps0, ps1 }.Select(ps => ps.Get<ParameterShard>().Current.Parameters!.Parameters.Select(p => p.Name).ToList()).ToList();
        Assert.All(held, names => Assert.NotEmpty(names));
        Assert.Empty(held[0].Intersect(held[1]));
        Assert.Contains(held.SelectMany(n => n), n => n.StartsWith("layers.hidden.weight@", StringComparison.Ordinal));
        Assert.Contains(Inference.Models.ScoringModule.InputMeanName, held[placement.StandardisationShard]);
        Assert.True(ps0.Get<ParameterShard>().Current.Version > 2 && ps1.Get<ParameterShard>().Current.Version > 2, "pushes reached both shards");
        using var initial = new ModelRegistry(registryA.Spec);
        Assert.False(initial.CurrentParameters().ApproximatelyEquals(Union()!, 1e-4f));
    }

    [Fact]
    public async Task After_the_parameter_server_restarts_empty_the_workers_seed_it_and_sync_again()
    {
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels-a", "labels-b" })
        {
            kafka.CreateTopic(topic, 2);
        }
        int port = EngineProcess.FreePort();
        Dictionary<string, string?> Ps()
        {
            var settings = EngineHarness.BaseSettings();
            settings["Inference:Role"] = "Ps";
            settings["Inference:Serving:Port"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return settings;
        }
        var ps = await EngineHarness.StartAsync(Ps());
        await using var a = await EngineHarness.StartAsync(Worker(kafka, ps.Address, "a"));
        await using var b = await EngineHarness.StartAsync(Worker(kafka, ps.Address, "b"));
        var stream = new SyntheticStream(entities: 50, seed: 3);
        using var producer = EngineHarness.Producer(kafka.BootstrapServers);
        void Labels(int count)
        {
            for (int i = 0; i < count; i++)
            {
                int entity = stream.NextEntity();
                producer.Produce(i % 2 == 0 ? "labels-a" : "labels-b", new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json });
            }
            producer.FlushAll();
        }
        for (int i = 0; i < 1_000; i++)
        {
            var e = stream.NextEvent();
            producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
        }
        Labels(200);
        await EngineHarness.WaitUntil(() => a.Metrics.LabelsTrained == 100 && b.Metrics.LabelsTrained == 100, TimeSpan.FromSeconds(60), () => "100 labels trained by each worker");
        // A whole sync round of each after its last label: everything it learned is pushed (the version alone
        // cannot say so: a worker that learned all its labels between two rounds pushes them at once).
        long roundsA = a.Metrics.SyncRounds, roundsB = b.Metrics.SyncRounds;
        await EngineHarness.WaitUntil(() => a.Metrics.SyncRounds > roundsA + 1 && b.Metrics.SyncRounds > roundsB + 1, TimeSpan.FromSeconds(30), () => "pushes from both workers");

        // The parameter server restarts with nothing: its state was in memory.
        long failuresA = a.Get<SyncMetrics>().Failures, failuresB = b.Get<SyncMetrics>().Failures;
        await ps.DisposeAsync();
        await EngineHarness.WaitUntil(() => a.Get<SyncMetrics>().Failures > failuresA && b.Get<SyncMetrics>().Failures > failuresB, TimeSpan.FromSeconds(30),
            () => "both workers to find the parameter server gone");
        ps = await EngineHarness.StartAsync(Ps());
        await using var restarted = ps;
        var shard = restarted.Get<ParameterShard>();
        await EngineHarness.WaitUntil(() =>
            {
                var (_, merged) = shard.Current;
                return merged is not null
                    && a.Get<ModelRegistry>().CurrentParameters().ApproximatelyEquals(merged)
                    && b.Get<ModelRegistry>().CurrentParameters().ApproximatelyEquals(merged);
            },
            TimeSpan.FromSeconds(20), () => "both workers to hold the restarted server's parameters");
        // Seeded from a worker's learned parameters, not from the initial model.
        using var initial = new ModelRegistry(a.Get<ModelRegistry>().Spec);
        Assert.False(initial.CurrentParameters().ApproximatelyEquals(shard.Current.Parameters!, 1e-4f));
        long failures = a.Metrics.Sync.Failures + b.Metrics.Sync.Failures;

        // And they go on learning through it. The version is taken before the labels: a worker pushes only
        // what it learned since its last sync, so its pushes may all be in by the time the labels are trained.
        long version = shard.Current.Version;
        Labels(200);
        await EngineHarness.WaitUntil(() => a.Metrics.LabelsTrained == 200 && b.Metrics.LabelsTrained == 200, TimeSpan.FromSeconds(60), () => "200 labels trained by each worker");
        await EngineHarness.WaitUntil(() => shard.Current.Version > version + 1 || a.Metrics.Sync.Failures + b.Metrics.Sync.Failures > failures + 10,
            TimeSpan.FromSeconds(30), () => "pushes to the restarted server");
        Assert.True(a.Metrics.Sync.Failures + b.Metrics.Sync.Failures <= failures + 2, "syncs keep failing after the restart");
    }

    /// <summary>2,000 events, then 400 labels alternating between "labels-a" and "labels-b" (200 for each worker).</summary>
    private static void ProduceForTwoWorkers(EmbeddedKafka kafka, int seed)
    {
        var stream = new SyntheticStream(entities: 50, seed: seed);
        using var producer = EngineHarness.Producer(kafka.BootstrapServers);
        for (int i = 0; i < 2_000; i++)
        {
            var e = stream.NextEvent();
            producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
        }
        for (int i = 0; i < 400; i++)
        {
            int entity = stream.NextEntity();
            producer.Produce(i % 2 == 0 ? "labels-a" : "labels-b", new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json });
        }
        producer.FlushAll();
    }

    /// <summary>An engine learning from its own labels topic (training batches of 16), reading events as group <paramref name="name"/>.</summary>
    private static Dictionary<string, string?> Member(EmbeddedKafka kafka, string name, string labels)
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Kafka:GroupId"] = name;
        settings["Inference:Kafka:LabelsTopic"] = labels;
        settings["Inference:Kafka:DeadLetterTopic"] = "";
        settings["Inference:Training:BatchSize"] = "16";
        return settings;
    }

    /// <summary>A worker named <paramref name="name"/> learning from "labels-NAME" and syncing with the parameter server at <paramref name="parameterServer"/>.</summary>
    private static Dictionary<string, string?> Worker(EmbeddedKafka kafka, string parameterServer, string name)
    {
        var settings = Member(kafka, name, $"labels-{name}");
        settings["Inference:Role"] = "Worker";
        settings["Inference:Sync:ParameterServer"] = parameterServer;
        settings["Inference:Sync:WorkerId"] = name;
        return settings;
    }
}

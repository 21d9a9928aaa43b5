using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using Grpc.Core;
using Inference.Demo;
using Inference.Engine.Kafka;
using Inference.Engine.Sync;
using Inference.Models;
using Inference.Models.Parameters;
using Inference.Models.Registry;
using Inference.Proto.V1;
using Inference.Testing;
using Xunit.Abstractions;
using Metadata = Grpc.Core.Metadata;

namespace Inference.Acceptance.Tests;

/// <summary>
/// A whole pool in one run, on loopback: a parameter server of two shards, three workers (one of them an
/// <c>inference serve</c> process, so it can be killed), events on 12 partitions with co-partitioned labels,
/// against a single node that reads the same topics.
/// </summary>
public sealed class PoolAcceptanceTests(ITestOutputHelper output) : IDisposable
{
    private const int Partitions = 12;
    private const int Entities = 90;
    private const int IntervalMs = 1_000;
    private const string Token = "pool-token-0123456789abcdef";
    private static readonly TimeSpan ShardDowntime = TimeSpan.FromMilliseconds(300);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "inference-pool-" + Guid.NewGuid().ToString("N"));
    private bool _passed;

    /// <summary>The run's logs and checkpoints are kept when it fails, for the reader of its output.</summary>
    public void Dispose()
    {
        if (_passed && Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    /// <summary>The features `inference serve` ships with (the child process reads them from its appsettings.json), for every engine of the run.</summary>
    private string Features
    {
        get
        {
            string path = Path.Combine(_root, "features.json");
            if (!File.Exists(path))
            {
                var shipped = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Repository.HostSettings))!;
                File.WriteAllText(path, shipped["Inference"]!["Features"]!["Definitions"]!.ToJsonString());
            }
            return path;
        }
    }

    private static Metadata Bearer => new() { { "authorization", "Bearer " + Token } };

    private Dictionary<string, string?> Shard(int port, int index)
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Role"] = "Ps";
        settings["Inference:Serving:Port"] = port.ToString(CultureInfo.InvariantCulture);
        settings["Inference:Security:Tokens:0"] = Token;
        settings["Inference:Checkpoints:Directory"] = Path.Combine(_root, $"ps-{index}");
        settings["Inference:Checkpoints:IntervalMs"] = "200";
        return settings;
    }

    /// <summary>A worker's settings as configuration keys (in-process) or switches (the child process).</summary>
    private Dictionary<string, string?> Worker(EmbeddedKafka kafka, string servers, string name) => new()
    {
        ["Inference:Role"] = "Worker",
        ["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers,
        ["Inference:Kafka:GroupId"] = "pool",
        ["Inference:Kafka:DeadLetterTopic"] = "",
        ["Inference:Kafka:LabelsDeadLetterTopic"] = "",
        ["Inference:Kafka:SessionTimeoutMs"] = "3000",
        ["Inference:Sync:ParameterServer"] = servers,
        ["Inference:Sync:WorkerId"] = name,
        ["Inference:Sync:IntervalMs"] = IntervalMs.ToString(CultureInfo.InvariantCulture),
        ["Inference:Training:BatchSize"] = "16",
        ["Inference:Training:PublishIntervalMs"] = "50",
        ["Inference:Checkpoints:Directory"] = Path.Combine(_root, "workers"),
        ["Inference:Checkpoints:IntervalMs"] = "500",
        ["Inference:Security:Tokens:0"] = Token,
        ["Inference:Security:Client:Token"] = Token,
        ["Inference:Features:File"] = Features,
    };

    /// <summary>A worker's settings on top of those every in-process test engine starts from.</summary>
    private static Dictionary<string, string?> InProcess(Dictionary<string, string?> worker)
    {
        var settings = EngineHarness.BaseSettings();
        foreach (var (key, value) in worker)
        {
            settings[key] = value;
        }
        return settings;
    }

    [Fact]
    public async Task A_pool_of_three_workers_and_two_shards_answers_learns_and_survives_like_one_node()
    {
        Directory.CreateDirectory(_root);
        output.WriteLine($"logs and checkpoints in {_root}");
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        kafka.CreateTopic("labels", Partitions);
        int[] ports = [EngineProcess.FreePort(), EngineProcess.FreePort()];
        var shards = new[] { await EngineHarness.StartAsync(Shard(ports[0], 0)), await EngineHarness.StartAsync(Shard(ports[1], 1)) };
        string servers = string.Join(',', ports.Select(p => $"http://127.0.0.1:{p}"));
        var single = EngineHarness.BaseSettings();
        single["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        single["Inference:Kafka:GroupId"] = "reference";
        single["Inference:Kafka:DeadLetterTopic"] = "";
        single["Inference:Kafka:LabelsDeadLetterTopic"] = "";
        single["Inference:Training:BatchSize"] = "16";
        single["Inference:Training:PublishIntervalMs"] = "50";
        single["Inference:Features:File"] = Features;
        EngineHarness? w2 = null;
        EngineProcess? w3 = null;
        try
        {
            await using var reference = await EngineHarness.StartAsync(single);
            await using var w1 = await EngineHarness.StartAsync(InProcess(Worker(kafka, servers, "w1")));
            w2 = await EngineHarness.StartAsync(InProcess(Worker(kafka, servers, "w2")));
            w3 = EngineProcess.Start(
                [.. Worker(kafka, servers, "w3").Select(p => $"--{p.Key}={p.Value}"), "--accelerator", "Cpu", "--Inference:Serving:HttpPort=-1"],
                Path.Combine(_root, "w3.log"));
            await w3.WaitUpAsync(TimeSpan.FromSeconds(90));
            var registry = new ParameterService.ParameterServiceClient(shards[0].Channel);
            // Each of the three owning some: a member that joined last may first announce an empty share while the
            // others still hold every partition, and the rebalance that gives it its share would then fall mid-test.
            await EngineHarness.WaitUntil(() => registry.Members(new MembersRequest(), Bearer) is { } m && m.Members.Count == 3 && m.Members.All(x => x.Partitions.Count > 0)
                    && m.Members.Sum(x => x.Partitions.Count) == Partitions,
                TimeSpan.FromSeconds(90), () => "three workers announcing all 12 partitions, each some");

            var stream = new SyntheticStream(entities: Entities, seed: 12);
            using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = kafka.BootstrapServers, Partitioner = Partitioner.Murmur2Random, LingerMs = 2 }).Build();
            for (int i = 0; i < 4_000; i++)
            {
                var e = stream.NextEvent();
                producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
            }
            producer.FlushAll();
            await reference.WaitTakenAsync(new Taken(4_000));

            var request = new ScoreRequest();
            for (int entity = 0; entity < Entities; entity++)
            {
                request.Rows.Add(new ScoreRow { Entity = stream.Key(entity) });
            }
            var clients = new Dictionary<string, ScoringService.ScoringServiceClient>
            {
                ["w1"] = new(w1.Channel),
                ["w2"] = new(w2.Channel),
                ["w3"] = new(w3.Channel),
            };
            var single1 = new ScoringService.ScoringServiceClient(reference.Channel);
            // Within the bound (the workers applying their partitions and learning each other's): every entity,
            // from every worker, scores as on the single node.
            async Task<string?> Differs(string worker, ScoreResponse expected)
            {
                var actual = await clients[worker].ScoreAsync(request, Bearer);
                var differing = Enumerable.Range(0, Entities).Where(r => Math.Abs(expected.Scores[r] - actual.Scores[r]) > 1e-6).ToList();
                if (differing.Count == 0)
                {
                    return null;
                }
                int at = differing[0];
                var partitions = differing.Select(r => actual.Origins[r].Partition).Distinct().Order();
                return $"via {worker}, row {at} (partition {actual.Origins[at].Partition}, scored by {actual.Origins[at].WorkerId}): {actual.Scores[at]} against {expected.Scores[at]}; "
                    + $"{differing.Count} rows differ, of partitions {string.Join(' ', partitions)}; model version {actual.ModelVersion} against {expected.ModelVersion}";
            }
            async Task Agree(IEnumerable<string> workers, Func<Task<ScoreResponse>> expected, string what)
            {
                string? difference = "not checked";
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (DateTime.UtcNow < deadline)
                {
                    difference = null;
                    try
                    {
                        var want = await expected();
                        foreach (string worker in workers)
                        {
                            difference ??= await Differs(worker, want);
                        }
                    }
                    catch (RpcException error)
                    {
                        // Mid-rebalance an owner may be gone: asked again.
                        difference = $"{error.StatusCode}: {error.Status.Detail}";
                    }
                    if (difference is null)
                    {
                        return;
                    }
                    await Task.Delay(200);
                }
                Assert.Fail($"{what}: {difference}; w1 learned {w1.Metrics.LabelsTrained} labels");
            }
            await Agree(["w1", "w2", "w3"], async () => await single1.ScoreAsync(request), "every entity from any worker as on the single node");
            output.WriteLine("scores from every worker equal the single node's");

            // Labels, co-partitioned; the parameter server's first shard restarts halfway through training.
            const int Labels = 960;
            void ProduceLabels(int count)
            {
                for (int i = 0; i < count; i++)
                {
                    int entity = stream.NextEntity();
                    producer.Produce("labels", new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json });
                }
                producer.FlushAll();
            }
            ProduceLabels(Labels / 2);
            await EngineHarness.WaitUntil(() => reference.Metrics.LabelsTrained == Labels / 2, TimeSpan.FromSeconds(60), () => "the first half of the labels learned");
            await shards[0].DisposeAsync();
            // The fault itself: a shard down for a moment (a quick restart), not a wait for something.
            await Task.Delay(ShardDowntime);
            shards[0] = await EngineHarness.StartAsync(Shard(ports[0], 0));
            var restarted = Stopwatch.StartNew();
            long rounds1 = w1.Metrics.SyncRounds, rounds2 = w2.Metrics.SyncRounds;
            await EngineHarness.WaitUntil(() => w1.Metrics.SyncRounds > rounds1 && w2.Metrics.SyncRounds > rounds2, TimeSpan.FromSeconds(30), () => "both in-process workers to sync with the restarted shard");
            output.WriteLine($"synced again {restarted.ElapsedMilliseconds} ms after the shard restarted (sync interval {IntervalMs} ms)");
            Assert.True(restarted.ElapsedMilliseconds <= 3 * IntervalMs, $"workers synced again only after {restarted.ElapsedMilliseconds} ms, more than 3 intervals");

            ProduceLabels(Labels / 2);
            await EngineHarness.WaitUntil(() => reference.Metrics.LabelsTrained == Labels, TimeSpan.FromSeconds(60), () => "every label learned by the single node");
            rounds1 = w1.Metrics.SyncRounds;
            rounds2 = w2.Metrics.SyncRounds;
            // After 5 sync rounds every worker's standardisation is the single node's (within 1e-4).
            async Task<ParameterSet> ModelOf(ScoringService.ScoringServiceClient client) =>
                new([.. (await client.GetModelAsync(new GetModelRequest(), Bearer)).Tensors.Select(t => new NamedParameter(t.Name, [.. t.Shape], [.. t.Values]))]);
            string? StandardisationDiffers(string name, ParameterSet actual, ParameterSet expected)
            {
                foreach (string tensor in new[] { ScoringModule.InputMeanName, ScoringModule.InputScaleName })
                {
                    var want = expected.Find(tensor)!.Values;
                    var got = actual.Find(tensor)!.Values;
                    for (int i = 0; i < want.Length; i++)
                    {
                        if (!(Math.Abs(want[i] - got[i]) <= 1e-4 * Math.Max(1, Math.Abs(want[i]))))
                        {
                            return $"{name}: {tensor}[{i}] {got[i]:R}, the single node's {want[i]:R}";
                        }
                    }
                }
                return null;
            }
            await EngineHarness.WaitUntil(() => w1.Metrics.SyncRounds >= rounds1 + 5 && w2.Metrics.SyncRounds >= rounds2 + 5, TimeSpan.FromSeconds(60), () => "5 more sync rounds");
            var expectedModel = reference.Get<ModelRegistry>().CurrentParameters();
            Assert.Contains(expectedModel.Find(ScoringModule.InputMeanName)!.Values, v => Math.Abs(v) > 0.01);
            foreach (var (name, client) in clients)
            {
                Assert.Null(StandardisationDiffers(name, await ModelOf(client), expectedModel));
            }
            output.WriteLine("standardisation of all three workers equals the single node's");

            // The parameter server's guards, on the second shard.
            var shard = new ParameterService.ParameterServiceClient(shards[1].Channel);
            var unauthenticated = await Assert.ThrowsAsync<RpcException>(() => shard.PullAsync(new PullRequest { WorkerId = "probe" }).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, unauthenticated.StatusCode);
            var pulled = await shard.PullAsync(new PullRequest { WorkerId = "probe" }, Bearer);
            PushRequest Push(ulong sequence, float value)
            {
                var push = new PushRequest { WorkerId = "probe", BaseVersion = pulled.Version, Sequence = sequence };
                foreach (var tensor in pulled.Tensors.Where(t => t.Name is not ScoringModule.InputMeanName and not ScoringModule.InputScaleName))
                {
                    var delta = new NamedTensor { Name = tensor.Name };
                    delta.Shape.Add(tensor.Shape);
                    delta.Values.Add(Enumerable.Repeat(value, tensor.Values.Count));
                    push.Deltas.Add(delta);
                }
                return push;
            }
            var first = await shard.PushAsync(Push(1, 0f), Bearer);
            var retried = await shard.PushAsync(Push(1, 0f), Bearer);
            Assert.False(first.Duplicate);
            Assert.True(retried.Duplicate);
            Assert.Equal(first.Version, retried.Version);
            foreach (float bad in new[] { float.NaN, 1e7f })
            {
                var before = shards[1].Get<ParameterShard>().Current;
                var refused = await Assert.ThrowsAsync<RpcException>(() => shard.PushAsync(Push(2, bad), Bearer).ResponseAsync);
                Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
                var after = shards[1].Get<ParameterShard>().Current;
                Assert.True(before.Parameters!.ApproximatelyEquals(after.Parameters!), "a refused push changed the shard");
            }

            // A worker stops gracefully, then one is killed: their partitions move, and (within the bound of a
            // rebalance, the handover and one announcement) every entity scores exactly as just before.
            // Learning is over: the models no longer change.
            var settled = await clients["w1"].ScoreAsync(request, Bearer);
            output.WriteLine($"settled: w1 learned {w1.Metrics.LabelsTrained} labels, model version {settled.ModelVersion}");
            await w2.DisposeAsync();
            w2 = null;
            clients.Remove("w2");
            await Agree(["w1", "w3"], () => Task.FromResult(settled), "after w2 stopped gracefully");
            output.WriteLine("w2 stopped: its entities score as before");
            w3.Crash();
            clients.Remove("w3");
            await Agree(["w1"], () => Task.FromResult(settled), "after w3 was killed");
            output.WriteLine("w3 killed: its entities score as before");
            _passed = true;
        }
        finally
        {
            if (w2 is not null)
            {
                await w2.DisposeAsync();
            }
            w3?.Dispose();
            foreach (var shard in shards)
            {
                await shard.DisposeAsync();
            }
        }
    }
}

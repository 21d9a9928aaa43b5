using System.Globalization;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Pool;
using Inference.Engine.Sync;
using Inference.Kernels.Embeddings;
using Inference.Kernels.Features;
using Inference.Proto.V1;

namespace Inference.Engine.Tests;

/// <summary>A model over ids in a pool: the workers sync the embedding rows they touch through the parameter server.</summary>
public sealed class PoolIdTests
{
    private const int Partitions = 4;
    private const int Users = 20;
    private const int Items = 20;
    private const int Dimension = 4;
    private const float InitScale = 0.1f;

    private static string User(int user) => $"user-{user}";

    private static string Item(int item) => $"item-{item}";

    private static int Likes(int user, int item) => (user + item) % 2 == 0 ? 1 : 0;

    private static Dictionary<string, string?> Worker(EmbeddedKafka kafka, string parameterServer, string name)
    {
        var settings = PoolTests.PoolWorker(kafka, parameterServer, name);
        settings["Inference:Model:Kind"] = "DotProduct";
        EngineHarness.DeclareIds(settings, ("user", "Entity", Dimension), ("item", "Request", Dimension));
        settings["Inference:Training:BatchSize"] = "16";
        settings["Inference:Training:LearningRate"] = "0.05";
        settings["Inference:Training:EmbeddingInitScale"] = InitScale.ToString(CultureInfo.InvariantCulture);
        EngineHarness.Declare(settings, ("count", "Count", null, null));
        return settings;
    }

    /// <summary>The rows of <paramref name="keys"/> in one of a worker's tables, read on its device executor (key 0: the default row).</summary>
    private static float[] Rows(EngineHarness worker, int table, ulong[] keys) =>
        worker.Get<DeviceExecutor>().Read((_, _) =>
        {
            var embeddings = worker.Get<DeviceExecutor>().Embeddings!.Tables[table];
            var rows = new int[keys.Length];
            embeddings.Lookup(keys, rows);
            var values = new float[keys.Length * Dimension];
            embeddings.Gather(rows, values);
            return values;
        });

    [Fact]
    public async Task Two_workers_end_with_the_same_rows_each_the_initial_values_plus_every_workers_changes()
    {
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        kafka.CreateTopic("labels", Partitions);
        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps = await EngineHarness.StartAsync(psSettings);
        await using var a = await EngineHarness.StartAsync(Worker(kafka, ps.Address, "a"));
        await using var b = await EngineHarness.StartAsync(Worker(kafka, ps.Address, "b"));
        var ownedA = a.Get<PartitionOwnership>();
        var ownedB = b.Get<PartitionOwnership>();
        await EngineHarness.WaitUntil(() => ownedA.Owned.Count > 0 && ownedB.Owned.Count > 0 && ownedA.Owned.Count + ownedB.Owned.Count == Partitions,
            TimeSpan.FromSeconds(60), () => "both workers to own partitions");

        // Users are partitioned (each user's row is learned by one worker), items are not (both learn every item's row).
        var random = new Random(7);
        long time = 1_767_225_600_000;
        var labels = new List<Confluent.Kafka.Message<string, byte[]>>();
        for (int i = 0; i < 1_600; i++)
        {
            int user = random.Next(Users), item = random.Next(Items);
            labels.Add(Streams.Json(User(user), string.Create(CultureInfo.InvariantCulture,
                $"{{\"entity\":\"{User(user)}\",\"ts\":{time += 10},\"label\":{Likes(user, item)},\"item\":\"{Item(item)}\"}}")));
        }
        using (var producer = EngineHarness.Producer(kafka.BootstrapServers))
        {
            producer.Produce("labels", labels);
        }
        await EngineHarness.WaitUntil(() => a.Metrics.LabelsTrained + b.Metrics.LabelsTrained == 1_600, TimeSpan.FromSeconds(120),
            () => $"every label learned (a {a.Metrics.LabelsTrained}, b {b.Metrics.LabelsTrained})");
        Assert.True(a.Metrics.LabelsTrained > 0 && b.Metrics.LabelsTrained > 0, "both workers learned");
        long roundsA = a.Metrics.SyncRounds, roundsB = b.Metrics.SyncRounds;
        await EngineHarness.WaitUntil(() => a.Metrics.SyncRounds >= roundsA + 3 && b.Metrics.SyncRounds >= roundsB + 3, TimeSpan.FromSeconds(30), () => "three sync rounds each after the last label");

        var (_, offsets) = ps.Get<ParameterShard>().RowsSince(0);
        string[] inputs = ["user", "item"];
        for (int table = 0; table < 2; table++)
        {
            var block = Assert.Single(offsets, o => o.Input == inputs[table]);
            var keys = (table == 0 ? Enumerable.Range(0, Users).Select(User) : Enumerable.Range(0, Items).Select(Item)).Select(EntityKey.Hash).ToArray();
            var fromA = Rows(a, table, keys);
            var fromB = Rows(b, table, keys);
            for (int k = 0; k < keys.Length; k++)
            {
                int at = Array.IndexOf(block.Keys, keys[k]);
                Assert.True(at >= 0, $"the server holds the {inputs[table]} row of key {keys[k]}");
                for (int d = 0; d < Dimension; d++)
                {
                    float expected = EmbeddingTable.InitialValue(keys[k], d, InitScale) + block.Values[at * Dimension + d];
                    float inA = fromA[k * Dimension + d], inB = fromB[k * Dimension + d];
                    Assert.True(Math.Abs(inA - expected) <= 1e-5 && Math.Abs(inB - expected) <= 1e-5,
                        $"{inputs[table]} {k}[{d}]: a {inA:R}, b {inB:R}, initial plus the server's sum {expected:R}");
                }
            }
        }

        // What the pool learned together: every pair scores on the planted side.
        var request = new ScoreRequest();
        for (int user = 0; user < Users; user++)
        {
            for (int item = 0; item < Items; item++)
            {
                request.Rows.Add(new ScoreRow { Entity = User(user), Ids = { ["item"] = Item(item) } });
            }
        }
        var scores = await new ScoringService.ScoringServiceClient(a.Channel).ScoreAsync(request);
        int right = Enumerable.Range(0, request.Rows.Count).Count(r => (scores.Scores[r] > 0.5f ? 1 : 0) == Likes(r / Items, r % Items));
        Assert.True(right >= 0.9 * request.Rows.Count, $"{right} of {request.Rows.Count} pairs on the planted side of 0.5");
    }
}

using System.Globalization;
using Confluent.Kafka;
using Grpc.Core;
using Inference.Engine.Checkpoints;
using Inference.Engine.Kafka;
using Inference.Proto.V1;
using Inference.Testing;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Tests;

/// <summary>
/// A model over ids through the whole engine: labels by Kafka carrying an item id, the user's id from the
/// label's entity, embedding tables on the device executor, Score with ids, checkpoints of the tables.
/// </summary>
public sealed class IdModelTests : IDisposable
{
    private const int Users = 20;
    private const int Items = 20;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "inference-ids-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>The planted taste: a user likes the items of its own parity (a pattern only the two ids together carry).</summary>
    private static int Likes(int user, int item) => (user + item) % 2 == 0 ? 1 : 0;

    private static string User(int user) => $"user-{user}";

    private static string Item(int item) => $"item-{item}";

    private Dictionary<string, string?> Settings(EmbeddedKafka kafka, bool checkpoints)
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Model:Kind"] = "DotProduct";
        EngineHarness.DeclareIds(settings, ("user", "Entity", 4), ("item", "Request", 4));
        settings["Inference:Training:BatchSize"] = "16";
        settings["Inference:Training:LearningRate"] = "0.05";
        settings["Inference:Training:EmbeddingLearningRate"] = "0.3";
        settings["Inference:Training:EmbeddingInitScale"] = "0.1";
        EngineHarness.Declare(settings, ("count", "Count", null, null));
        if (checkpoints)
        {
            settings["Inference:Checkpoints:Directory"] = _directory;
            settings["Inference:Checkpoints:IntervalMs"] = "300";
        }
        return settings;
    }

    /// <summary>An embedded broker with the topics a training engine reads and writes, four partitions each.</summary>
    internal static EmbeddedKafka Kafka()
    {
        var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels", "events.dead-letter", "labels.dead-letter" })
        {
            kafka.CreateTopic(topic, 4);
        }
        return kafka;
    }

    /// <summary>Labels of random (user, item) pairs drawn from the planted taste, each naming its item.</summary>
    private static IEnumerable<Message<string, byte[]>> Labels(int count, int seed)
    {
        var random = new Random(seed);
        long time = 1_767_225_600_000;
        for (int i = 0; i < count; i++)
        {
            int user = random.Next(Users), item = random.Next(Items);
            yield return Streams.Json(User(user), string.Create(CultureInfo.InvariantCulture,
                $"{{\"entity\":\"{User(user)}\",\"ts\":{time += 10},\"label\":{Likes(user, item)},\"item\":\"{Item(item)}\"}}"));
        }
    }

    private static ScoreRequest EveryPair()
    {
        var request = new ScoreRequest();
        for (int user = 0; user < Users; user++)
        {
            for (int item = 0; item < Items; item++)
            {
                request.Rows.Add(new ScoreRow { Entity = User(user), Ids = { ["item"] = Item(item) } });
            }
        }
        return request;
    }

    [Fact]
    public async Task A_dot_product_model_learns_which_items_each_user_likes_and_scores_them_from_its_tables_after_a_restart()
    {
        using var kafka = Kafka();
        var settings = Settings(kafka, checkpoints: true);
        var request = EveryPair();
        ScoreResponse learned;
        await using (var engine = await EngineHarness.StartAsync(settings))
        {
            await engine.ProduceAndWaitAsync("labels", Labels(2_400, seed: 5), new Taken(0, Labels: 2_400), TimeSpan.FromSeconds(120));
            long rounds = engine.Metrics.SyncRounds;
            await EngineHarness.WaitUntil(() => engine.Metrics.SyncRounds >= rounds + 2, TimeSpan.FromSeconds(30), () => "two sync rounds after the last label");
            learned = await new ScoringService.ScoringServiceClient(engine.Channel).ScoreAsync(request);
        }
        // Only the ids tell a liked pair from a disliked one (every entity's aggregates are empty): the tables learned it.
        int right = 0;
        for (int r = 0; r < request.Rows.Count; r++)
        {
            right += (learned.Scores[r] > 0.5f ? 1 : 0) == Likes(r / Items, r % Items) ? 1 : 0;
        }
        Assert.True(right >= 0.95 * request.Rows.Count, $"{right} of {request.Rows.Count} pairs on the planted side of 0.5");

        // The graceful stop wrote the tables into its final checkpoint; a restart scores every pair exactly as before.
        var newest = CheckpointFiles.List(_directory)[^1];
        Assert.Equal(2, newest.Manifest!.Trainer!.EmbeddingTables);
        await using (var engine = await EngineHarness.StartAsync(settings))
        {
            var again = await new ScoringService.ScoringServiceClient(engine.Channel).ScoreAsync(request);
            double largest = learned.Scores.Zip(again.Scores, (a, b) => Math.Abs(a - b)).Max();
            // Within float rounding: the checkpoint may hold the trainer's weights just before its last sync adopted the merge.
            Assert.True(largest <= 1e-6, $"a score differs by {largest} after the restart");
            var model = await new ScoringService.ScoringServiceClient(engine.Channel).GetModelAsync(new GetModelRequest());
            Assert.Equal(new[] { "user", "item" }, model.Ids.Select(i => i.Name));
            Assert.Equal(new[] { "Entity", "Request" }, model.Ids.Select(i => i.Source));
            Assert.Equal(new long[] { Users, Items }, model.Ids.Select(i => i.Rows));
            Assert.Equal(0, engine.Metrics.LabelsTrained);
        }

        // Tables of other dimensions are another model shape: the checkpoint stops the start.
        settings["Inference:Model:Ids:0:Dimension"] = "8";
        settings["Inference:Model:Ids:1:Dimension"] = "8";
        var error = await Assert.ThrowsAsync<CheckpointException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("id dimensions", error.Message);
    }

    [Theory]
    [InlineData("DotProduct")]
    [InlineData("EmbeddingMlp")]
    public async Task A_model_over_ids_exported_from_its_checkpoints_scores_in_PyTorch_as_the_engine_does(string kind)
    {
        string python = PyTorchFixtures.PythonWithXxhash()
            ?? throw new InvalidOperationException("This test needs a Python with torch and xxhash (Debian: python3-torch python3-xxhash; .ci/run installs them).");
        using var kafka = Kafka();
        var settings = Settings(kafka, checkpoints: true);
        settings["Inference:Model:Kind"] = kind;
        var request = EveryPair();
        // An item never learned from: the default row, in the engine and in PyTorch.
        request.Rows.Add(new ScoreRow { Entity = User(0), Ids = { ["item"] = "item-never-seen" } });
        ScoreResponse served;
        var counts = new Dictionary<string, float>();
        await using (var engine = await EngineHarness.StartAsync(settings))
        {
            // User u has u % 4 events: its count feature (the model's input) differs from its neighbours'.
            var events = Enumerable.Range(0, Users).SelectMany(u => Enumerable.Range(0, u % 4).Select(e =>
                Streams.Json(User(u), $"{{\"entity\":\"{User(u)}\",\"ts\":{1_767_225_000_000 + (u * 4) + e}}}"))).ToList();
            await engine.ProduceAndWaitAsync("events", events, new Taken(events.Count));
            await engine.ProduceAndWaitAsync("labels", Labels(800, seed: 3), new Taken(events.Count, Labels: 800));
            long rounds = engine.Metrics.SyncRounds;
            await EngineHarness.WaitUntil(() => engine.Metrics.SyncRounds >= rounds + 2, TimeSpan.FromSeconds(30), () => "two sync rounds after the last label");
            var client = new ScoringService.ScoringServiceClient(engine.Channel);
            served = await client.ScoreAsync(request);
            var features = await client.GetFeaturesAsync(new GetFeaturesRequest { Entities = { Enumerable.Range(0, Users).Select(User) } });
            foreach (var entity in features.Entities)
            {
                counts[entity.Entity] = entity.Found ? (float)entity.Values[0] : 0;
            }
        }
        string file = Path.Combine(_directory, "ids.pt");
        var (code, output) = EngineProcess.RunCommand("model", "export", file, "--checkpoints", _directory);
        Assert.True(code == 0, output);
        Assert.Contains("a model over ids (user: 20 rows of 4, item: 20 rows of 4)", output);
        Assert.True(File.Exists(file + ".ids.json"));

        // The model input is the declared feature as the engine transforms it (SignedLog1p of the count).
        var inputs = request.Rows.Select(row => new[] { MathF.Log(1 + counts[row.Entity]) }).ToArray();
        var ids = new Dictionary<string, string[]>
        {
            ["user"] = [.. request.Rows.Select(row => row.Entity)],
            ["item"] = [.. request.Rows.Select(row => row.Ids["item"])],
        };
        var pytorch = PyTorchFixtures.ScoreIdsInPyTorch(python, file, inputs, ids);
        for (int r = 0; r < request.Rows.Count; r++)
        {
            Assert.True(Math.Abs(pytorch[r] - served.Scores[r]) <= 1e-5, $"row {r}: PyTorch {pytorch[r]:R}, the engine {served.Scores[r]:R}");
        }
    }

    [Fact]
    public async Task A_row_without_its_ids_or_with_unknown_ones_is_refused_and_a_label_without_them_is_set_aside()
    {
        using var kafka = Kafka();
        await using var engine = await EngineHarness.StartAsync(Settings(kafka, checkpoints: false));
        var client = new ScoringService.ScoringServiceClient(engine.Channel);
        var missing = await Assert.ThrowsAsync<RpcException>(() => client.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = User(1) } } }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, missing.StatusCode);
        Assert.Contains("rows[0].ids has no 'item'", missing.Status.Detail);
        var unknown = await Assert.ThrowsAsync<RpcException>(() => client.ScoreAsync(new ScoreRequest
        {
            Rows = { new ScoreRow { Entity = User(1), Ids = { ["item"] = Item(1), ["shop"] = "s-1" } } },
        }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, unknown.StatusCode);
        Assert.Contains("'shop'", unknown.Status.Detail);

        // An id never learned from reads the default row: a score, not an error.
        var fresh = await client.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "user-new", Ids = { ["item"] = "item-new" } } } });
        Assert.InRange(fresh.Scores[0], 0f, 1f);

        // Labels without the item are set aside (counted), the others learned.
        var labels = Labels(32, seed: 9).ToList();
        labels.Add(Streams.Json(User(3), $"{{\"entity\":\"{User(3)}\",\"ts\":1767225700000,\"label\":1}}"));
        await engine.ProduceAndWaitAsync("labels", labels, new Taken(0, Labels: 32));
        await EngineHarness.WaitUntil(() => engine.Metrics.MalformedLabels == 1, TimeSpan.FromSeconds(30), () => "the label without its item set aside");
    }

    [Theory]
    [InlineData("Inference:Model:Ids:1:Source", "LastOf", "Inference:Model:Ids:1:Field")]
    [InlineData("Inference:Model:Ids:1:Dimension", "8", "two id inputs of one dimension")]
    [InlineData("Inference:Model:Ids:1:Name", "user", "Inference:Model:Ids:1:Name")]
    [InlineData("Inference:Model:Ids:1:Name", "label", "names a label field")]
    [InlineData("Inference:Model:Ids:0:Capacity", "64", "Inference:Model:Ids:0:Capacity")]
    [InlineData("Inference:Model:Kind", "Mlp", "Inference:Model:Ids")]
    [InlineData("Inference:Outputs:Scores:Enabled", "true", "Inference:Model:Ids:1 are of source Request")]
    [InlineData("Inference:Training:EmbeddingLearningRate", "0", "Inference:Training:EmbeddingLearningRate")]
    public async Task A_bad_id_input_fails_start_naming_its_key(string key, string value, string named)
    {
        using var kafka = Kafka();
        var settings = Settings(kafka, checkpoints: false);
        settings[key] = value;
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.True(error.Message.Contains(named, StringComparison.Ordinal), error.Message);
    }
}

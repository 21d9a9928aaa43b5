using System.Collections.Concurrent;
using System.Globalization;
using Confluent.Kafka;
using Inference.Engine.Training;
using Inference.Kernels.Features;
using Inference.Proto.V1;
using Xunit.Abstractions;

namespace Inference.Engine.Tests;

/// <summary>
/// The feature log: a label naming the request Score answered learns from exactly what the model saw then,
/// not from its entity's state when the label arrives, while the entity keeps receiving events.
/// </summary>
public sealed class FeatureLogTests(ITestOutputHelper output)
{
    private sealed class ManualClock(long startMs) : TimeProvider
    {
        public long NowMs { get; set; } = startMs;

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeMilliseconds(NowMs);
    }

    [Fact]
    public void A_request_joins_once_while_it_is_held_and_young_enough()
    {
        var clock = new ManualClock(1_000_000);
        var log = new FeatureLog(width: 2, idInputs: 1, capacity: 4_096 * 2, maxAgeMs: 60_000, clock);
        log.Served([11, 0, 12], [1, 2, 3, 4, 5, 6], [101, 102, 103], [0.1f, 0.2f, 0.3f], version: 7);
        Assert.Equal(2, log.Count);

        var inputs = new float[2];
        var ids = new ulong[1];
        Assert.Equal(LabelJoin.Joined, log.Join(12, inputs, ids));
        Assert.Equal([5f, 6f], inputs);
        Assert.Equal([103UL], ids);
        Assert.Equal(LabelJoin.Duplicate, log.Join(12, inputs, ids));
        Assert.Equal(LabelJoin.FellBack, log.Join(0, inputs, ids));
        Assert.Equal(LabelJoin.TooLate, log.Join(13, inputs, ids));
        Assert.Equal(0.1f, log.Find(11)!.Value.Score);
        Assert.Equal(7, log.Find(11)!.Value.Version);

        // Past the maximum delay a request no longer joins.
        clock.NowMs += 60_001;
        Assert.Equal(LabelJoin.TooLate, log.Join(11, inputs, ids));

        // Served again, a request id holds what was served last.
        log.Served([11], [9, 9], [109], [0.9f], version: 8);
        Assert.Equal(LabelJoin.Joined, log.Join(11, inputs, ids));
        Assert.Equal([9f, 9f], inputs);
    }

    [Fact]
    public void The_oldest_rows_make_room_for_new_ones()
    {
        var log = new FeatureLog(width: 1, idInputs: 0, capacity: 5_000, maxAgeMs: 60_000, TimeProvider.System);
        for (ulong r = 1; r <= 12_000; r++)
        {
            log.Served([r], [r], [], [0.5f], version: 1);
        }
        Assert.Equal(5_000, log.Count);
        var inputs = new float[1];
        Assert.Equal(LabelJoin.TooLate, log.Join(7_000, inputs, []));
        Assert.Equal(LabelJoin.Joined, log.Join(7_001, inputs, []));
        Assert.Equal(7_001f, inputs[0]);
        Assert.Equal(LabelJoin.Joined, log.Join(12_000, inputs, []));
    }

    [Fact]
    public async Task Labels_arriving_up_to_a_minute_after_their_scores_learn_from_what_was_served()
    {
        using var kafka = IdModelTests.Kafka();
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Training:BatchSize"] = "8";
        settings["Inference:Training:MaxLabelDelayMs"] = "120000";
        EngineHarness.Declare(settings, ("count", "Count", null, null), ("spent", "Sum", "amount", null), ("idle", "TimeSinceLast", null, null));
        await using var engine = await EngineHarness.StartAsync(settings);
        var log = engine.Get<FeatureLog>();
        var learned = new ConcurrentDictionary<ulong, float[]>();
        int learnedTwice = 0;
        log.Learned = (requests, inputs) =>
        {
            for (int r = 0; r < requests.Length; r++)
            {
                if (requests[r] != 0 && !learned.TryAdd(requests[r], inputs.Slice(r * log.Width, log.Width).ToArray()))
                {
                    Interlocked.Increment(ref learnedTwice);
                }
            }
        };
        var client = new ScoringService.ScoringServiceClient(engine.Channel);
        using var producer = EngineHarness.Producer(kafka.BootstrapServers);
        var random = new Random(23);
        const int Users = 12;
        string User(int u) => $"user-{u}";

        // Labels due later: (due, message), sent in due order.
        var due = new PriorityQueue<Message<string, byte[]>, long>();
        var served = new Dictionary<ulong, float[]>();
        var servedEntity = new Dictionary<ulong, int>();
        int joined = 0, fellBack = 0, tooLate = 0, duplicates = 0;
        Message<string, byte[]> Label(int user, long ts, int value, string? request) => Streams.Json(User(user), string.Create(CultureInfo.InvariantCulture,
            $"{{\"entity\":\"{User(user)}\",\"ts\":{ts},\"label\":{value}{(request is null ? "" : $",\"request_id\":\"{request}\"")}}}"));

        var started = DateTime.UtcNow;
        long NowMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        long elapsed() => (long)(DateTime.UtcNow - started).TotalMilliseconds;
        int requests = 0;
        while (true)
        {
            long now = NowMs();
            // The entities keep receiving events the whole time: their state moves on after each score.
            producer.Produce("events", Enumerable.Range(0, 4).Select(_ =>
            {
                int u = random.Next(Users);
                return Streams.Json(User(u), string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{User(u)}\",\"ts\":{now},\"amount\":{random.Next(1, 100)}}}"));
            }));
            if (elapsed() < 4_000)
            {
                int u = random.Next(Users);
                string id = $"req-{requests++}";
                var answer = await client.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = User(u), RequestId = id } } });
                var held = log.Find(EntityKey.Hash(id)) ?? throw new InvalidOperationException($"{id} is not in the feature log");
                Assert.Equal(answer.Scores[0], held.Score);
                Assert.Equal(answer.ModelVersion, held.Version);
                served[EntityKey.Hash(id)] = held.Inputs;
                servedEntity[EntityKey.Hash(id)] = u;
                long delay = random.Next(0, 60_001);
                due.Enqueue(Label(u, now, random.Next(2), id), elapsed() + delay);
                joined++;
                if (requests % 8 == 0)
                {
                    // A second label of the same request, after the first: set aside.
                    due.Enqueue(Label(u, now, 1, id), elapsed() + delay + 1_000);
                    duplicates++;
                }
                if (requests % 5 == 0)
                {
                    due.Enqueue(Label(u, now, 0, null), elapsed() + random.Next(0, 60_001));
                    fellBack++;
                }
                if (requests % 7 == 0)
                {
                    due.Enqueue(Label(u, now, 0, $"never-served-{requests}"), elapsed() + random.Next(0, 60_001));
                    tooLate++;
                }
            }
            while (due.TryPeek(out _, out long at) && at <= elapsed())
            {
                producer.Produce("labels", [due.Dequeue()]);
            }
            if (elapsed() >= 4_000 && due.Count == 0)
            {
                break;
            }
            await Task.Delay(50);
        }
        output.WriteLine($"{requests} requests served; labels: {joined} joined, {fellBack} without request_id, {tooLate} naming no served request, {duplicates} duplicates");

        var metrics = engine.Get<TrainingMetrics>();
        // Joins are counted as a mini-batch starts, labels learned as it ends: wait for both.
        await EngineHarness.WaitUntil(() => metrics.LabelJoins(LabelJoin.Joined) + metrics.LabelJoins(LabelJoin.FellBack) + metrics.LabelJoins(LabelJoin.TooLate)
            + metrics.LabelJoins(LabelJoin.Duplicate) == joined + fellBack + tooLate + duplicates && metrics.LabelsTrained >= joined + fellBack + tooLate,
            TimeSpan.FromSeconds(30), () => "every label joined or set aside, and learned");
        Assert.Equal(joined, metrics.LabelJoins(LabelJoin.Joined));
        Assert.Equal(fellBack, metrics.LabelJoins(LabelJoin.FellBack));
        Assert.Equal(tooLate, metrics.LabelJoins(LabelJoin.TooLate));
        Assert.Equal(duplicates, metrics.LabelJoins(LabelJoin.Duplicate));
        Assert.Equal(joined + fellBack + tooLate, metrics.LabelsTrained);

        // Every joined label learned from the model inputs served, bit for bit, once.
        Assert.Equal(0, learnedTwice);
        foreach (var (request, inputs) in served)
        {
            Assert.True(learned.TryGetValue(request, out var vector), $"request {request} was not learned from");
            Assert.Equal(inputs.Select(BitConverter.SingleToInt32Bits), vector!.Select(BitConverter.SingleToInt32Bits));
        }
        // The entities' state had moved on since their scores: learning from it now would be another vector.
        var after = await client.ScoreAsync(new ScoreRequest { Rows = { Enumerable.Range(0, Users).Select(u => new ScoreRow { Entity = User(u), RequestId = $"after-{u}" }) } });
        Assert.Equal(Users, after.Scores.Count);
        int moved = served.Count(pair => log.Find(EntityKey.Hash($"after-{servedEntity[pair.Key]}"))!.Value.Inputs[0] != pair.Value[0]);
        Assert.True(moved >= 0.9 * served.Count, $"only {moved} of {served.Count} served counts differ from their entity's count now");
    }
}

/// <summary>Labels naming an event scored on the stream learn from what it was scored with.</summary>
public sealed class StreamScoredLabelTests
{
    [Fact]
    public async Task A_label_naming_a_stream_scored_event_learns_from_the_inputs_it_was_scored_with()
    {
        using var kafka = StreamScoringTests.Broker();
        var settings = StreamScoringTests.Settings(kafka, "All");
        settings["Inference:Training:Enabled"] = "true";
        settings["Inference:Training:BatchSize"] = "16";
        settings["Inference:Outputs:Scores:IncludeFeatures"] = "true";
        await using var engine = await EngineHarness.StartAsync(settings);
        var log = engine.Get<FeatureLog>();
        var outputs = engine.Get<Outputs.OutputMetrics>();
        var learned = new ConcurrentDictionary<ulong, float[]>();
        log.Learned = (requests, inputs) =>
        {
            for (int r = 0; r < requests.Length; r++)
            {
                if (requests[r] != 0)
                {
                    learned[requests[r]] = inputs.Slice(r * log.Width, log.Width).ToArray();
                }
            }
        };
        const long Start = 1_767_225_600_000;
        var random = new Random(6);
        List<Message<string, byte[]>> Events(int count, long from) => [.. Enumerable.Range(0, count).Select(i =>
        {
            string user = $"user-{random.Next(10)}";
            return Streams.Json(user, string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{user}\",\"ts\":{from + i},\"amount\":{random.Next(1, 200)}}}"));
        })];
        await engine.ProduceAndWaitAsync("events", Events(200, Start), new Taken(200, Labels: 0));
        await EngineHarness.WaitUntil(() => outputs.Scored == 200, TimeSpan.FromSeconds(60), () => $"200 events scored (so far {outputs.Scored})");
        var scored = StreamScoringTests.ReadCommitted(kafka.BootstrapServers, "scores", 200);
        // The entities move on before the labels arrive.
        await engine.ProduceAndWaitAsync("events", Events(200, Start + 1_000), new Taken(400, Labels: 0));

        var labels = scored.Select(s => Streams.Json(s.Entity, string.Create(CultureInfo.InvariantCulture,
            $"{{\"entity\":\"{s.Entity}\",\"ts\":{s.EventTimeMs},\"label\":1,\"request_id\":\"{Inference.Client.ScoredEvents.RequestId(s)}\"}}"))).ToList();
        await engine.ProduceAndWaitAsync("labels", labels, new Taken(400, Labels: scored.Count));
        var metrics = engine.Get<TrainingMetrics>();
        Assert.Equal(scored.Count, metrics.LabelJoins(LabelJoin.Joined));
        int moved = 0;
        foreach (var s in scored)
        {
            var inputs = learned[EntityKey.Hash(Inference.Client.ScoredEvents.RequestId(s))];
            Assert.Equal(s.Features.ToArray(), inputs);
            var now = engine.Get<Features.FeatureStore>().Read(s.Entity)!;
            moved += Math.Abs(Math.Log(1 + now["count"]) - inputs[0]) > 1e-6 ? 1 : 0;
        }
        Assert.True(moved > scored.Count / 2, $"only {moved} of {scored.Count} entities moved on after their scored event");
    }
}

/// <summary>The feature log on a Kafka topic: labels of requests served before a restart still learn from what was served.</summary>
public sealed class FeatureLogTopicTests
{
    [Fact]
    public async Task Labels_of_requests_served_before_a_restart_join_what_was_served_through_the_topic()
    {
        using var kafka = IdModelTests.Kafka();
        kafka.CreateTopic("features.log", 4);
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Training:BatchSize"] = "8";
        settings["Inference:Training:FeatureLogTopic"] = "features.log";
        EngineHarness.Declare(settings, ("count", "Count", null, null), ("spent", "Sum", "amount", null));
        const int Users = 10, Requests = 50;
        var random = new Random(9);
        var served = new Dictionary<string, (int User, float[] Inputs)>();
        await using (var first = await EngineHarness.StartAsync(settings))
        {
            var events = Enumerable.Range(0, 300).Select(i =>
            {
                int u = random.Next(Users);
                return Streams.Json($"user-{u}", string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"user-{u}\",\"ts\":{1_767_225_600_000 + i},\"amount\":{random.Next(1, 100)}}}"));
            });
            await first.ProduceAndWaitAsync("events", events, new Taken(300));
            var client = new ScoringService.ScoringServiceClient(first.Channel);
            var log = first.Get<FeatureLog>();
            for (int r = 0; r < Requests; r++)
            {
                int u = random.Next(Users);
                string id = $"before-restart-{r}";
                await client.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = $"user-{u}", RequestId = id } } });
                served[id] = (u, log.Find(EntityKey.Hash(id))!.Value.Inputs);
            }
        }

        await using var second = await EngineHarness.StartAsync(settings);
        var learned = new ConcurrentDictionary<ulong, float[]>();
        var secondLog = second.Get<FeatureLog>();
        secondLog.Learned = (requests, inputs) =>
        {
            for (int r = 0; r < requests.Length; r++)
            {
                learned[requests[r]] = inputs.Slice(r * secondLog.Width, secondLog.Width).ToArray();
            }
        };
        await EngineHarness.WaitUntil(() => secondLog.Count == Requests, TimeSpan.FromSeconds(30), () => $"{Requests} rows read back (so far {secondLog.Count})");
        using (var producer = EngineHarness.Producer(kafka.BootstrapServers))
        {
            producer.Produce("labels", served.Select(s => Streams.Json($"user-{s.Value.User}", string.Create(CultureInfo.InvariantCulture,
                $"{{\"entity\":\"user-{s.Value.User}\",\"ts\":1767225700000,\"label\":1,\"request_id\":\"{s.Key}\"}}"))));
        }
        var metrics = second.Get<TrainingMetrics>();
        await EngineHarness.WaitUntil(() => metrics.LabelsTrained == Requests, TimeSpan.FromSeconds(60), () => $"{Requests} labels learned (so far {metrics.LabelsTrained})");
        Assert.Equal(Requests, metrics.LabelJoins(LabelJoin.Joined));
        foreach (var (id, (_, inputs)) in served)
        {
            Assert.Equal(inputs, learned[EntityKey.Hash(id)]);
        }
    }
}

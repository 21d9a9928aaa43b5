using System.Globalization;
using Confluent.Kafka;
using Inference.Engine.Kafka;
using Inference.Proto.V1;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Tests;

/// <summary>
/// An id input of source <c>LastOf</c> through the whole engine: the merchant of each user's newest event
/// (by event time, out of order and with equal times) is the id the model learns from and scores with.
/// </summary>
public sealed class LastOfIdTests
{
    private const int Users = 40;
    private const int Merchants = 10;
    private const long Start = 1_767_225_600_000;

    /// <summary>The planted risk: the even merchants' payments are fraud, whoever pays.</summary>
    private static int Fraud(int merchant) => merchant % 2 == 0 ? 1 : 0;

    private static string User(int user) => $"user-{user}";

    private static string Merchant(int merchant) => $"m-{merchant}";

    private static Dictionary<string, string?> Settings(EmbeddedKafka kafka)
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Model:Kind"] = "EmbeddingMlp";
        settings["Inference:Model:Hidden"] = "8";
        EngineHarness.DeclareIds(settings, ("merchant", "LastOf", 4));
        settings["Inference:Model:Ids:0:Field"] = "merchant";
        settings["Inference:Training:BatchSize"] = "16";
        settings["Inference:Training:LearningRate"] = "0.05";
        settings["Inference:Training:EmbeddingLearningRate"] = "0.3";
        settings["Inference:Training:EmbeddingInitScale"] = "0.1";
        EngineHarness.Declare(settings, ("count", "Count", null, null));
        return settings;
    }

    private static Message<string, byte[]> Payment(int user, long time, int merchant) =>
        Streams.Json(User(user), string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{User(user)}\",\"ts\":{time},\"merchant\":\"{Merchant(merchant)}\"}}"));

    /// <summary>The stream so far: events applied, labels learned, the newest event time, each user's newest merchant.</summary>
    private sealed class Stream
    {
        public long Events;
        public long Labels;
        public long Time = Start;
        public int[] Newest { get; } = new int[Users];
    }

    /// <summary>
    /// Rounds of payments then labels: each user pays at three merchants in shuffled order (the newest by time
    /// wins, and of two at the same newest time the one of the larger hashed key); the labels that follow are
    /// the risk of that merchant. Returns once they are learned and synced.
    /// </summary>
    private static async Task<Stream> LearnAsync(EngineHarness engine, int rounds)
    {
        var random = new Random(17);
        var stream = new Stream();
        for (int round = 0; round < rounds; round++)
        {
            var batch = new List<Message<string, byte[]>>();
            long time = stream.Time += 1_000;
            for (int user = 0; user < Users; user++)
            {
                var payments = new List<(long Time, int Merchant)>
                {
                    (time - random.Next(1, 500), random.Next(Merchants)),
                    (time, random.Next(Merchants)),
                    (time, random.Next(Merchants)),
                };
                stream.Newest[user] = payments.Where(p => p.Time == time).MaxBy(p => Inference.Kernels.Features.EntityKey.Hash(Merchant(p.Merchant))).Merchant;
                batch.AddRange(payments.OrderBy(_ => random.Next()).Select(p => Payment(user, p.Time, p.Merchant)));
            }
            stream.Events += batch.Count;
            await engine.ProduceAndWaitAsync("events", batch, new Taken(stream.Events, Labels: stream.Labels));
            var labelled = Enumerable.Range(0, Users).Select(user => Streams.Json(User(user),
                string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{User(user)}\",\"ts\":{time + 1},\"label\":{Fraud(stream.Newest[user])}}}"))).ToList();
            stream.Labels += labelled.Count;
            await engine.ProduceAndWaitAsync("labels", labelled, new Taken(stream.Events, Labels: stream.Labels));
        }
        long synced = engine.Metrics.SyncRounds;
        await EngineHarness.WaitUntil(() => engine.Metrics.SyncRounds >= synced + 2, TimeSpan.FromSeconds(30), () => "two sync rounds after the last label");
        return stream;
    }

    [Fact]
    public async Task The_merchant_of_each_users_newest_event_is_learned_from_and_scored_with()
    {
        using var kafka = IdModelTests.Kafka();
        await using var engine = await EngineHarness.StartAsync(Settings(kafka));
        var client = new ScoringService.ScoringServiceClient(engine.Channel);
        var stream = await LearnAsync(engine, rounds: 16);
        var newest = stream.Newest;
        long events = stream.Events, labels = stream.Labels, time = stream.Time;
        var request = new ScoreRequest { Rows = { Enumerable.Range(0, Users).Select(u => new ScoreRow { Entity = User(u) }) } };
        var scores = await client.ScoreAsync(request);
        int right = Enumerable.Range(0, Users).Count(u => (scores.Scores[u] > 0.5f ? 1 : 0) == Fraud(newest[u]));
        Assert.True(right == Users, $"{right} of {Users} users scored on the side of their newest merchant");

        // A newer payment at a merchant of the other kind moves every user's score across 0.5; an older one does not.
        time += 1_000;
        var moved = Enumerable.Range(0, Users).Select(u => (User: u, Merchant: (newest[u] + 1) % Merchants)).ToList();
        var late = Enumerable.Range(0, Users).Select(u => Payment(u, time - 100_000, newest[u]));
        events += 2 * Users;
        await engine.ProduceAndWaitAsync("events", moved.Select(m => Payment(m.User, time, m.Merchant)).Concat(late), new Taken(events, Labels: labels));
        var after = await client.ScoreAsync(request);
        right = moved.Count(m => (after.Scores[m.User] > 0.5f ? 1 : 0) == Fraud(m.Merchant));
        Assert.True(right == Users, $"{right} of {Users} users scored on the side of the merchant of their newest payment");

        var model = await client.GetModelAsync(new GetModelRequest());
        var input = Assert.Single(model.Ids);
        Assert.Equal(("merchant", "LastOf", "merchant"), (input.Name, input.Source, input.Field));
        Assert.Equal(Merchants, input.Rows);

        // The merchant is state, not a request id: a row naming it is refused.
        var named = await Assert.ThrowsAsync<Grpc.Core.RpcException>(() => client.ScoreAsync(new ScoreRequest
        {
            Rows = { new ScoreRow { Entity = User(0), Ids = { ["merchant"] = Merchant(1) } } },
        }).ResponseAsync);
        Assert.Equal(Grpc.Core.StatusCode.InvalidArgument, named.StatusCode);

        // Every event must carry the field, as the fields features aggregate: one without it is set aside.
        await engine.ProduceAndWaitAsync("events", [Streams.Json(User(0), $"{{\"entity\":\"{User(0)}\",\"ts\":{time + 1}}}")], new Taken(events, Malformed: 1, Labels: labels));
    }

    [Fact]
    public async Task Stream_scoring_reads_the_scored_events_own_merchant_and_answers_as_Score_does()
    {
        using var kafka = StreamScoringTests.Broker();
        var settings = Settings(kafka);
        settings["Inference:Outputs:Scores:Enabled"] = "true";
        settings["Inference:Outputs:Scores:Select"] = "score";
        await using var engine = await EngineHarness.StartAsync(settings);
        var outputs = engine.Get<Inference.Engine.Outputs.OutputMetrics>();
        var stream = await LearnAsync(engine, rounds: 16);

        // One selected payment per user, at a merchant of the other kind than its last: its score is that merchant's risk.
        long time = stream.Time + 1_000;
        var merchant = Enumerable.Range(0, Users).Select(u => (stream.Newest[u] + 1) % Merchants).ToArray();
        var scored = Enumerable.Range(0, Users).Select(u => Streams.Json(User(u),
            string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{User(u)}\",\"ts\":{time},\"merchant\":\"{Merchant(merchant[u])}\",\"score\":true}}")));
        await engine.ProduceAndWaitAsync("events", scored, new Taken(stream.Events + Users, Labels: stream.Labels));
        await EngineHarness.WaitUntil(() => outputs.Scored == Users, TimeSpan.FromSeconds(60), () => $"{Users} events scored (so far {outputs.Scored})");
        Assert.Equal(Users, outputs.Scored);

        var records = StreamScoringTests.ReadCommitted(kafka.BootstrapServers, "scores", Users).ToDictionary(r => r.Entity);
        Assert.Equal(Users, records.Count);
        var request = new ScoreRequest { Rows = { Enumerable.Range(0, Users).Select(u => new ScoreRow { Entity = User(u) }) } };
        var response = await new ScoringService.ScoringServiceClient(engine.Channel).ScoreAsync(request);
        for (int u = 0; u < Users; u++)
        {
            var record = records[User(u)];
            Assert.True((record.Score > 0.5f ? 1 : 0) == Fraud(merchant[u]), $"{User(u)} at {Merchant(merchant[u])} scored {record.Score} on the stream");
            Assert.Equal(response.ModelVersion, record.ModelVersion);
            Assert.True(Math.Abs(response.Scores[u] - record.Score) <= 1e-6, $"{User(u)}: scored {record.Score:R} on the stream, Score answers {response.Scores[u]:R}");
        }
    }

    [Theory]
    [InlineData(null, "Inference:Model:Ids:0:Field")]
    [InlineData("ts", "Inference:Model:Ids:0:Field")]
    [InlineData("amount", "a numeric field a feature aggregates")]
    public async Task A_last_of_input_without_a_field_of_ids_fails_start_naming_its_key(string? field, string named)
    {
        using var kafka = IdModelTests.Kafka();
        var settings = Settings(kafka);
        settings["Inference:Model:Ids:0:Field"] = field;
        EngineHarness.Declare(settings, ("count", "Count", null, null), ("spent", "Sum", "amount", null));
        var error = await Assert.ThrowsAnyAsync<Exception>(() => EngineHarness.StartAsync(settings));
        Assert.True(error is OptionsValidationException, error.ToString());
        Assert.True(error.Message.Contains(named, StringComparison.Ordinal), error.Message);
    }
}

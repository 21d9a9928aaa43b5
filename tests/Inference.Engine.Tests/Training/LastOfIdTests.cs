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

    private static EmbeddedKafka Kafka()
    {
        var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels", "events.dead-letter", "labels.dead-letter" })
        {
            kafka.CreateTopic(topic, 4);
        }
        return kafka;
    }

    private static Message<string, byte[]> Payment(int user, long time, int merchant) =>
        Streams.Json(User(user), string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{User(user)}\",\"ts\":{time},\"merchant\":\"{Merchant(merchant)}\"}}"));

    [Fact]
    public async Task The_merchant_of_each_users_newest_event_is_learned_from_and_scored_with()
    {
        using var kafka = Kafka();
        await using var engine = await EngineHarness.StartAsync(Settings(kafka));
        var client = new ScoringService.ScoringServiceClient(engine.Channel);
        var random = new Random(17);
        long events = 0, labels = 0, time = Start;
        var newest = new int[Users];
        for (int round = 0; round < 16; round++)
        {
            // Each user pays at three merchants in shuffled order: the newest by time wins, and of two at the
            // same newest time the one of the larger hashed key; the labels that follow are that merchant's risk.
            var batch = new List<Message<string, byte[]>>();
            time += 1_000;
            for (int user = 0; user < Users; user++)
            {
                var payments = new List<(long Time, int Merchant)>
                {
                    (time - random.Next(1, 500), random.Next(Merchants)),
                    (time, random.Next(Merchants)),
                    (time, random.Next(Merchants)),
                };
                newest[user] = payments.Where(p => p.Time == time).MaxBy(p => Inference.Kernels.Features.EntityKey.Hash(Merchant(p.Merchant))).Merchant;
                batch.AddRange(payments.OrderBy(_ => random.Next()).Select(p => Payment(user, p.Time, p.Merchant)));
            }
            events += batch.Count;
            await engine.ProduceAndWaitAsync("events", batch, new Taken(events, Labels: labels));
            var labelled = Enumerable.Range(0, Users).Select(user => Streams.Json(User(user),
                string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{User(user)}\",\"ts\":{time + 1},\"label\":{Fraud(newest[user])}}}"))).ToList();
            labels += labelled.Count;
            await engine.ProduceAndWaitAsync("labels", labelled, new Taken(events, Labels: labels));
        }
        long rounds = engine.Metrics.SyncRounds;
        await EngineHarness.WaitUntil(() => engine.Metrics.SyncRounds >= rounds + 2, TimeSpan.FromSeconds(30), () => "two sync rounds after the last label");

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

    [Theory]
    [InlineData(null, "Inference:Model:Ids:0:Field")]
    [InlineData("ts", "Inference:Model:Ids:0:Field")]
    [InlineData("amount", "a numeric field a feature aggregates")]
    public async Task A_last_of_input_without_a_field_of_ids_fails_start_naming_its_key(string? field, string named)
    {
        using var kafka = Kafka();
        var settings = Settings(kafka);
        settings["Inference:Model:Ids:0:Field"] = field;
        EngineHarness.Declare(settings, ("count", "Count", null, null), ("spent", "Sum", "amount", null));
        var error = await Assert.ThrowsAnyAsync<Exception>(() => EngineHarness.StartAsync(settings));
        Assert.True(error is OptionsValidationException, error.ToString());
        Assert.True(error.Message.Contains(named, StringComparison.Ordinal), error.Message);
    }
}

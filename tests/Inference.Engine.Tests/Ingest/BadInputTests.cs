using System.Text;
using Confluent.Kafka;
using Grpc.Core;
using Inference.Engine.Features;
using Inference.Proto.V1;

namespace Inference.Engine.Tests;

/// <summary>Bad input is counted and set aside, or refused with the right status; good input around it is untouched.</summary>
public sealed class BadInputTests
{
    [Fact]
    public async Task Malformed_events_are_counted_and_set_aside_while_good_ones_around_them_apply()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Kafka:EmbeddedPartitions"] = "1";
        settings["Inference:Training:Enabled"] = "false";
        EngineHarness.Declare(settings, ("count", "Count", null, null), ("amount_sum", "Sum", "amount", null), ("merchants", "DistinctCount", "merchant", null));
        await using var engine = await EngineHarness.StartAsync(settings);

        string[] malformed =
        [
            "{\"entity\":\"a\",\"ts\":1000,\"amount\":", // truncated JSON
            "not json at all",
            "{\"ts\":1000,\"amount\":1}", // no entity
            "{\"entity\":\"\",\"ts\":1000,\"amount\":1}", // empty entity
            "{\"entity\":\"a\",\"amount\":1}", // no time
            "{\"entity\":\"a\",\"ts\":\"yesterday\",\"amount\":1}", // time not a number
            "{\"entity\":\"a\",\"ts\":1000,\"amount\":\"12\"}", // non-numeric field
            "{\"entity\":\"a\",\"ts\":1000,\"merchant\":\"m\"}", // numeric field missing
            "{\"entity\":\"a\",\"ts\":1000,\"amount\":1,\"merchant\":[1]}", // key field not a string or number
            "[1,2,3]",
        ];
        var messages = new List<Message<string, byte[]>>();
        for (int i = 0; i < malformed.Length; i++)
        {
            messages.Add(Streams.Json("a", $"{{\"entity\":\"a\",\"ts\":{1000 + i},\"amount\":{i}.5,\"merchant\":\"m{i % 3}\",\"note\":{{\"x\":[1]}}}}"));
            messages.Add(Streams.Json("a", malformed[i]));
        }
        await engine.ProduceAndWaitAsync("events", messages, new Taken(Events: malformed.Length, Malformed: malformed.Length));
        var features = engine.Get<FeatureStore>().Read("a");
        Assert.NotNull(features);
        Assert.Equal(malformed.Length, features["count"]);
        Assert.Equal(Enumerable.Range(0, malformed.Length).Sum(i => i + 0.5), features["amount_sum"]);
        Assert.Equal(3, features["merchants"]);
        Assert.Equal(2 * malformed.Length - 1, engine.Get<FeatureStore>().Watermark.Partitions.Single().Offset);

        // Set aside means kept: every malformed event is on the dead-letter topic with its reason.
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig
        {
            BootstrapServers = engine.BootstrapServers,
            GroupId = "dead-letter-reader",
            AutoOffsetReset = AutoOffsetReset.Earliest,
        }).Build();
        consumer.Subscribe("events.dead-letter");
        var deadLetters = new List<(string Value, string Reason)>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (deadLetters.Count < malformed.Length && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is not null)
            {
                deadLetters.Add((Encoding.UTF8.GetString(result.Message.Value), Encoding.UTF8.GetString(result.Message.Headers.GetLastBytes("inference.error"))));
            }
        }
        consumer.Close();
        Assert.Equal(malformed, deadLetters.Select(d => d.Value));
        Assert.Equal(
            ["bad_json", "bad_json", "missing_entity", "missing_entity", "missing_ts", "bad_ts", "non_numeric_field", "missing_field", "bad_key_field", "bad_json"],
            deadLetters.Select(d => d.Reason));
    }

    [Fact]
    public async Task Ten_thousand_malformed_events_of_eleven_kinds_are_all_set_aside_with_reason_and_key_and_every_good_one_applies_exactly()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Training:Enabled"] = "false";
        EngineHarness.Declare(settings, ("count", "Count", null, null), ("amount_sum", "Sum", "amount", null), ("last", "Last", "amount", null));
        await using var engine = await EngineHarness.StartAsync(settings);

        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        // (payload, content type, reason): each kind of bad input the decoders tell apart.
        (string Payload, string? ContentType, string Reason)[] kinds =
        [
            ("{\"entity\":\"a\",\"ts\":1000,\"amount\":", null, "bad_json"),
            ("not json at all", null, "bad_json"),
            ("{\"ts\":1000,\"amount\":1}", null, "missing_entity"),
            ("{\"entity\":\"a\",\"amount\":1}", null, "missing_ts"),
            ("{\"entity\":\"a\",\"ts\":\"yesterday\",\"amount\":1}", null, "bad_ts"),
            ("{\"entity\":\"a\",\"ts\":1000,\"amount\":\"12\"}", null, "non_numeric_field"),
            ("{\"entity\":\"a\",\"ts\":1000}", null, "missing_field"),
            ($"{{\"entity\":\"a\",\"ts\":{now + 3_600_000},\"amount\":1}}", null, "future_timestamp"),
            ("\u0001\u0002garbage", Kafka.EventContentTypes.Protobuf, "bad_protobuf"),
            ("ARROW?", Kafka.EventContentTypes.Arrow, "bad_arrow"),
            ("<event/>", "application/xml", "unknown_content_type"),
        ];
        const int Bad = 10_000;
        var expected = new Dictionary<string, string>();
        var sums = new Dictionary<string, (int Count, double Sum, float Last)>();
        var messages = new List<Message<string, byte[]>>();
        for (int i = 0; i < Bad; i++)
        {
            string entity = $"good-{i % 97}";
            float amount = i % 1000 + 0.25f;
            var (count, sum, _) = sums.GetValueOrDefault(entity);
            sums[entity] = (count + 1, sum + amount, amount);
            messages.Add(Streams.Json(entity, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{{\"entity\":\"{entity}\",\"ts\":{now - 100_000 + i},\"amount\":{amount}}}")));
            var kind = kinds[i % kinds.Length];
            string key = $"bad-{i}";
            expected[key] = kind.Reason;
            messages.Add(new Message<string, byte[]>
            {
                Key = key,
                Value = Encoding.UTF8.GetBytes(kind.Payload),
                Headers = kind.ContentType is null ? null : new Headers { { "content-type", Encoding.UTF8.GetBytes(kind.ContentType) } },
            });
        }
        await engine.ProduceAndWaitAsync("events", messages, new Taken(Events: Bad, Malformed: Bad));
        var store = engine.Get<FeatureStore>();
        foreach (var (entity, (count, sum, last)) in sums)
        {
            var values = store.Read(entity)!;
            Assert.Equal(count, values["count"]);
            Assert.Equal(sum, values["amount_sum"], 1e-9 * sum);
            Assert.Equal(last, values["last"]);
        }
        // Every bad one is on the dead-letter topic, under its original key, with its reason.
        using var consumer = new ConsumerBuilder<string, byte[]>(new ConsumerConfig
        {
            BootstrapServers = engine.BootstrapServers,
            GroupId = "dead-letter-reader",
            AutoOffsetReset = AutoOffsetReset.Earliest,
        }).Build();
        consumer.Subscribe("events.dead-letter");
        var seen = new Dictionary<string, string>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (seen.Count < Bad && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is not null)
            {
                seen[result.Message.Key] = Encoding.UTF8.GetString(result.Message.Headers.GetLastBytes("inference.error"));
            }
        }
        consumer.Close();
        Assert.Equal(expected.Count, seen.Count);
        foreach (var (key, reason) in expected)
        {
            Assert.Equal(reason, seen.GetValueOrDefault(key));
        }
        // The engine stays up and serves.
        var scored = await new ScoringService.ScoringServiceClient(engine.Channel).ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "good-1" } } });
        Assert.Single(scored.Scores);
    }

    [Fact]
    public async Task Bad_score_requests_get_invalid_argument_naming_the_row()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Training:Enabled"] = "false";
        settings["Inference:Model:RequestFeatures"] = "2";
        await using var engine = await EngineHarness.StartAsync(settings);
        var client = new ScoringService.ScoringServiceClient(engine.Channel);

        async Task<string> Refused(ScoreRequest request)
        {
            var error = await Assert.ThrowsAsync<RpcException>(async () => await client.ScoreAsync(request));
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            return error.Status.Detail;
        }

        static ScoreRow Row(string entity, params float[] features)
        {
            var row = new ScoreRow { Entity = entity };
            row.RequestFeatures.AddRange(features);
            return row;
        }

        Assert.Equal("The request has no rows.", await Refused(new ScoreRequest()));
        Assert.Equal("rows[1].entity is empty.", await Refused(new ScoreRequest { Rows = { Row("a", 1, 2), Row("", 1, 2) } }));
        Assert.Equal("rows[0].request_features[1] is NaN; features must be finite numbers.", await Refused(new ScoreRequest { Rows = { Row("a", 1, float.NaN) } }));
        Assert.Equal("rows[2].request_features[0] is Infinity; features must be finite numbers.", await Refused(new ScoreRequest { Rows = { Row("a", 1, 2), Row("b", 1, 2), Row("c", float.PositiveInfinity, 2) } }));
        Assert.Equal("rows[0] has 1 request features; the model takes 2.", await Refused(new ScoreRequest { Rows = { Row("a", 1) } }));

        // A good request still works, and an unknown entity is scored as an empty one.
        var response = await client.ScoreAsync(new ScoreRequest { Rows = { Row("never-seen", 0.5f, -1f) } });
        Assert.Single(response.Scores);
        Assert.InRange(response.Scores[0], 0f, 1f);
        Assert.Equal(1, response.ModelVersion);
    }
}

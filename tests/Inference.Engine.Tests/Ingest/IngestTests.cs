using System.Text;
using Confluent.Kafka;
using Google.Protobuf;
using Inference.Demo;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Kernels.Features;
using Inference.Proto.V1;
using Inference.Testing;
using Xunit.Abstractions;
using Event = Inference.Proto.V1.Event;

namespace Inference.Engine.Tests;

/// <summary>
/// Ingest over real components: every format through the embedded broker (here), gRPC streaming ingestion and
/// read-your-writes (<c>IngestTests.Grpc.cs</c>), offsets, commits and rebalances (<c>IngestTests.Offsets.cs</c>).
/// </summary>
public sealed partial class IngestTests(ITestOutputHelper output)
{
    private const double HalfLifeMs = 30_000;

    private static Dictionary<string, string?> Settings()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        EngineHarness.Declare(settings,
            ("count", "Count", null, null),
            ("amount_sum", "Sum", "amount", null),
            ("amount_mean", "Mean", "amount", null),
            ("amount_decayed", "DecayedSum", "amount", $"HalfLifeMs={HalfLifeMs}"));
        return settings;
    }

    [Fact]
    public async Task Json_protobuf_event_batches_and_arrow_land_as_the_oracle_says_among_bad_payloads()
    {
        await using var run = await MixedFormatsAsync();
        AssertMatchesOracle(run.Engine.Get<FeatureStore>(), run.Stream, run.Events);
    }

    [Fact]
    public async Task Bad_payloads_of_each_format_are_set_aside_with_their_reason()
    {
        await using var run = await MixedFormatsAsync();
        var reasons = ReadDeadLetters(run.Engine.BootstrapServers, 4);
        Assert.Equal(["bad_arrow", "bad_protobuf", "missing_field", "unknown_content_type"], reasons.Order());
    }

    /// <summary>An engine that has taken 8,000 events in four formats with four bad payloads among them.</summary>
    private static async Task<MixedFormats> MixedFormatsAsync()
    {
        var settings = Settings();
        settings["Inference:Training:Enabled"] = "false";
        var engine = await EngineHarness.StartAsync(settings);
        var stream = new SyntheticStream(entities: 200, seed: 7);
        var events = Enumerable.Range(0, 8_000).Select(_ => stream.NextEvent()).ToList();

        using (var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = engine.BootstrapServers, LingerMs = 2 }).Build())
        {
            void Send(string key, byte[] value, string? contentType)
            {
                var headers = contentType is null ? null : new Headers { { "content-type", Encoding.UTF8.GetBytes(contentType) } };
                producer.Produce("events", new Message<string, byte[]> { Key = key, Value = value, Headers = headers });
            }
            // A quarter each: JSON, one Event per message, EventBatches of 50, Arrow streams of 1,000 rows
            // (more than a 512-event micro-batch: the rest goes into the next batch).
            var groups = events.Select((e, i) => (e, i)).GroupBy(x => x.i % 4, x => x.e).ToDictionary(g => g.Key, g => g.ToList());
            foreach (var e in groups[0])
            {
                Send(stream.Key(e.Entity), e.Json, null);
            }
            foreach (var e in groups[1])
            {
                Send(stream.Key(e.Entity), EventEncodings.Protobuf(stream, e).ToByteArray(), EventContentTypes.Protobuf);
            }
            foreach (var chunk in groups[2].Chunk(50))
            {
                var batch = new EventBatch();
                batch.Events.AddRange(chunk.Select(e => EventEncodings.Protobuf(stream, e)));
                Send("batch", batch.ToByteArray(), EventContentTypes.ProtobufBatch);
            }
            foreach (var chunk in groups[3].Chunk(1_000))
            {
                Send("arrow", EventEncodings.Arrow(stream, chunk), EventContentTypes.Arrow);
            }
            // Set aside, each with its reason: garbage in either binary format, an event without its field, an unknown type.
            Send("bad", [0xFF, 0xFF, 0xFF], EventContentTypes.Protobuf);
            Send("bad", [1, 2, 3, 4, 5, 6, 7, 8], EventContentTypes.Arrow);
            Send("bad", new Event { Entity = "x", Ts = 1 }.ToByteArray(), EventContentTypes.Protobuf);
            Send("bad", "a,b,c"u8.ToArray(), "text/csv");
            producer.FlushAll();
        }
        await engine.WaitTakenAsync(new Taken(events.Count, Malformed: 4));
        return new MixedFormats(engine, stream, events);
    }

    private sealed record MixedFormats(EngineHarness Engine, SyntheticStream Stream, List<SyntheticEvent> Events) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Engine.DisposeAsync();
    }

    private static void AssertMatchesOracle(FeatureStore store, SyntheticStream stream, IReadOnlyList<SyntheticEvent> events)
    {
        var plan = store.Plan;
        var oracle = new FeatureOracle(plan);
        oracle.Apply([.. events.Select(e => EntityKey.Hash(stream.Key(e.Entity)))], [.. events.Select(e => e.TimeMs)], [[.. events.Select(e => e.Amount)]], []);
        long watermark = store.Watermark.MaxEventTimeMs;
        Assert.Equal(events.Max(e => e.TimeMs), watermark);
        foreach (int entity in events.Select(e => e.Entity).Distinct())
        {
            var read = store.Read(stream.Key(entity));
            Assert.NotNull(read);
            ulong key = EntityKey.Hash(stream.Key(entity));
            for (int f = 0; f < plan.Count; f++)
            {
                double want = oracle.Value(key, f, watermark);
                double got = read[plan.Definitions[f].Name];
                Assert.True(Math.Abs(got - want) <= 1e-5 * Math.Max(1, Math.Abs(want)),
                    $"{stream.Key(entity)} {plan.Definitions[f].Name}: read {got:R}, the oracle says {want:R}");
            }
        }
    }

    private static List<string> ReadDeadLetters(string bootstrapServers, int count, string topic = KafkaOptions.DefaultDeadLetterTopic) =>
        [.. ReadDeadLetterMessages(bootstrapServers, count, topic).Select(m => Encoding.UTF8.GetString(m.Headers.GetLastBytes("inference.error")))];

    private static List<Message<byte[]?, byte[]>> ReadDeadLetterMessages(string bootstrapServers, int count, string topic)
    {
        using var consumer = new ConsumerBuilder<byte[]?, byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = $"dead-letters-{Guid.NewGuid():N}",
            AutoOffsetReset = AutoOffsetReset.Earliest,
        }).Build();
        consumer.Subscribe(topic);
        var messages = new List<Message<byte[]?, byte[]>>();
        var until = DateTime.UtcNow.AddSeconds(30);
        while (messages.Count < count && DateTime.UtcNow < until)
        {
            if (consumer.Consume(100) is { IsPartitionEOF: false } result)
            {
                messages.Add(result.Message);
            }
        }
        return messages;
    }
}

using System.Diagnostics;
using System.Text;
using Confluent.Kafka;
using Google.Protobuf;
using Grpc.Core;
using Inference.Demo;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Kernels.Features;
using Inference.Proto.V1;
using Inference.Testing;
using Xunit.Abstractions;
using Event = Inference.Proto.V1.Event;

namespace Inference.Engine.Tests;

/// <summary>Ingest over real components: every format through the embedded broker, gRPC streaming ingestion, read-your-writes, a labels rebalance.</summary>
public sealed class IngestTests(ITestOutputHelper output)
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

    [Fact]
    public async Task Grpc_ingest_acks_every_batch_rejects_bad_rows_by_index_and_lands_as_the_oracle_says()
    {
        var settings = Settings();
        settings["Inference:Training:Enabled"] = "false";
        await using var engine = await EngineHarness.StartAsync(settings);
        var client = new IngestService.IngestServiceClient(engine.Channel);
        var stream = new SyntheticStream(entities: 1_000, seed: 11);
        var events = Enumerable.Range(0, 100_000).Select(_ => stream.NextEvent()).ToList();
        var batches = events.Chunk(500).ToList();

        using var call = client.Ingest();
        var acks = new List<IngestAck>();
        var reading = Task.Run(async () =>
        {
            await foreach (var ack in call.ResponseStream.ReadAllAsync())
            {
                acks.Add(ack);
            }
        });
        foreach (var chunk in batches)
        {
            var batch = new EventBatch();
            batch.Events.AddRange(chunk.Select(e => EventEncodings.Protobuf(stream, e)));
            await call.RequestStream.WriteAsync(batch);
        }
        // One batch with two bad rows among good ones: the good ones are taken.
        var mixed = new EventBatch();
        var extra = stream.NextEvent();
        mixed.Events.Add(new Event { Entity = "", Ts = 5, Values = { ["amount"] = 1 } });
        mixed.Events.Add(EventEncodings.Protobuf(stream, extra));
        mixed.Events.Add(new Event { Entity = "y", Ts = 5 });
        await call.RequestStream.WriteAsync(mixed);
        events.Add(extra);
        await call.RequestStream.CompleteAsync();
        await reading;

        Assert.Equal(batches.Count + 1, acks.Count);
        Assert.Equal(Enumerable.Range(0, batches.Count + 1).Select(i => (long)i), acks.Select(a => a.Sequence));
        Assert.All(acks.Take(batches.Count), a => Assert.Equal(500, a.Accepted));
        var last = acks[^1];
        Assert.Equal(1, last.Accepted);
        Assert.Equal([(0, "missing_entity"), (2, "missing_field")], last.Rejected.Select(r => (r.Index, r.Reason)));
        Assert.Equal(events.Count, acks.Sum(a => a.Accepted));

        await engine.WaitTakenAsync(new Taken(events.Count));
        AssertMatchesOracle(engine.Get<FeatureStore>(), stream, events);
    }

    [Fact]
    public async Task Score_with_the_acks_watermark_always_sees_the_event_just_ingested()
    {
        const int Rounds = 1_000;
        var settings = Settings();
        settings["Inference:Training:Enabled"] = "false";
        await using var engine = await EngineHarness.StartAsync(settings);
        var ingest = new IngestService.IngestServiceClient(engine.Channel);
        var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
        var store = engine.Get<FeatureStore>();
        using var call = ingest.Ingest();
        var latencies = new List<double>();
        int misses = 0;
        long time = FeatureSelfCheck.Start;
        for (int round = 0; round < Rounds; round++)
        {
            string entity = $"payer-{round}";
            var batch = new EventBatch { Events = { new Event { Entity = entity, Ts = ++time, Values = { ["amount"] = round } } } };
            await call.RequestStream.WriteAsync(batch);
            Assert.True(await call.ResponseStream.MoveNext());
            var ack = call.ResponseStream.Current;
            Assert.Equal(1, ack.Accepted);
            long started = Stopwatch.GetTimestamp();
            var response = await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = entity } }, MinWatermark = ack.Written },
                deadline: DateTime.UtcNow.AddSeconds(10));
            latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            foreach (var written in ack.Written.Partitions)
            {
                var applied = response.Watermark.Partitions.SingleOrDefault(p => p.Topic == written.Topic && p.Partition == written.Partition);
                if (applied is null || applied.LastAppliedOffset < written.LastAppliedOffset)
                {
                    misses++;
                }
            }
        }
        await call.RequestStream.CompleteAsync();
        // The responses' watermarks covered every event; the state agrees that each entity holds its one event.
        for (int round = 0; round < Rounds; round += 97)
        {
            Assert.Equal(1, store.Read($"payer-{round}")!["count"]);
        }
        latencies.Sort();
        output.WriteLine($"read-your-writes Score latency over {Rounds} rounds: p50 {latencies[Rounds / 2]:F2} ms, p99 {latencies[Rounds * 99 / 100]:F2} ms");
        Assert.Equal(0, misses);
    }

    [Fact]
    public async Task A_score_whose_watermark_is_never_reached_ends_at_its_deadline()
    {
        var settings = Settings();
        settings["Inference:Training:Enabled"] = "false";
        await using var engine = await EngineHarness.StartAsync(settings);
        var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
        var far = new Proto.V1.FeatureWatermark { Partitions = { new PartitionWatermark { Topic = "events", Partition = 0, LastAppliedOffset = 1_000_000 } } };
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "a" } }, MinWatermark = far }, deadline: DateTime.UtcNow.AddMilliseconds(300)));
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
    }

    [Fact]
    public async Task A_second_labels_consumer_joining_and_leaving_loses_no_label_and_the_host_goes_on()
    {
        var settings = Settings();
        settings["Inference:Training:BatchSize"] = "16";
        settings["Inference:Training:MaxBatchDelayMs"] = "20";
        await using var engine = await EngineHarness.StartAsync(settings);
        var stream = new SyntheticStream(entities: 100, seed: 3);
        using var producer = EngineHarness.Producer(engine.BootstrapServers);
        void ProduceLabels(int count)
        {
            for (int i = 0; i < count; i++)
            {
                int entity = stream.NextEntity();
                producer.Produce("labels", new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json });
            }
            producer.FlushAll();
        }
        ProduceLabels(2_000);
        await EngineHarness.WaitUntil(() => engine.Metrics.LabelsTrained > 0, TimeSpan.FromSeconds(30), () => "the host training");

        // A second member of the labels group joins: the host gives up partitions (training and
        // committing what it read from them first), the newcomer reads some labels without
        // committing, then leaves, and the host takes its partitions back from the committed offsets.
        int seenBySecond = 0;
        using (var second = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig
        {
            BootstrapServers = engine.BootstrapServers,
            GroupId = "inference.labels",
            EnableAutoCommit = false,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            SessionTimeoutMs = 6_000,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
        }).Build())
        {
            second.Subscribe("labels");
            var until = DateTime.UtcNow.AddSeconds(30);
            while (second.Assignment.Count == 0 && DateTime.UtcNow < until)
            {
                seenBySecond += second.Consume(100) is { IsPartitionEOF: false } ? 1 : 0;
            }
            Assert.NotEmpty(second.Assignment);
            ProduceLabels(1_000);
            for (int i = 0; i < 50; i++)
            {
                seenBySecond += second.Consume(20) is { IsPartitionEOF: false } ? 1 : 0;
            }
            second.Close();
        }
        ProduceLabels(1_000);
        await EngineHarness.WaitUntil(() => engine.Metrics.LabelsTrained >= 4_000, TimeSpan.FromSeconds(60),
            () => $"all 4000 labels trained by the host (so far {engine.Metrics.LabelsTrained}; the second member saw {seenBySecond} and committed none)");
        output.WriteLine($"host trained {engine.Metrics.LabelsTrained} labels; the second member read {seenBySecond}");
        var health = new Grpc.Health.V1.Health.HealthClient(engine.Channel);
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new Grpc.Health.V1.HealthCheckRequest())).Status);
    }

    [Fact]
    public async Task A_far_future_event_an_overflowing_value_and_a_nan_label_leave_everything_else_exact_and_finite()
    {
        var settings = Settings();
        // One raw (untransformed) sum as a model input too: the overflow reaches the trainer.
        settings["Inference:Features:Definitions:4:Name"] = "amount_sum_raw";
        settings["Inference:Features:Definitions:4:Aggregation"] = "Sum";
        settings["Inference:Features:Definitions:4:Field"] = "amount";
        settings["Inference:Training:BatchSize"] = "8";
        settings["Inference:Training:MaxBatchDelayMs"] = "20";
        settings["Inference:Training:PublishIntervalMs"] = "20";
        await using var engine = await EngineHarness.StartAsync(settings);
        var stream = new SyntheticStream(entities: 50, seed: 5);
        var events = Enumerable.Range(0, 2_000).Select(_ => stream.NextEvent()).ToList();
        long future = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 86_400_000;
        using (var producer = EngineHarness.Producer(engine.BootstrapServers))
        {
            foreach (var e in events)
            {
                producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
            }
            // A clock a day ahead: set aside, never "now" for anyone.
            producer.Produce("events", new Message<string, byte[]> { Key = "skewed", Value = Encoding.UTF8.GetBytes($"{{\"entity\":\"skewed\",\"ts\":{future},\"amount\":1}}") });
            // Two values whose sum is beyond float: the state holds it, a read is bounded.
            long at = events[^1].TimeMs;
            for (int i = 0; i < 2; i++)
            {
                producer.Produce("events", new Message<string, byte[]> { Key = "huge", Value = Encoding.UTF8.GetBytes($"{{\"entity\":\"huge\",\"ts\":{at},\"amount\":3e38}}") });
            }
            for (int i = 0; i < 400; i++)
            {
                int entity = stream.NextEntity();
                producer.Produce("labels", new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json });
                if (i % 50 == 0)
                {
                    producer.Produce("labels", new Message<string, byte[]> { Key = "huge", Value = Encoding.UTF8.GetBytes($"{{\"entity\":\"huge\",\"ts\":{at},\"label\":1}}") });
                    producer.Produce("labels", new Message<string, byte[]> { Key = "nan", Value = Encoding.UTF8.GetBytes($"{{\"entity\":\"huge\",\"ts\":{at},\"label\":NaN}}") });
                }
            }
            producer.FlushAll();
        }
        await engine.WaitTakenAsync(new Taken(events.Count + 2, Malformed: 1));
        var training = engine.Get<Training.TrainingMetrics>();
        await EngineHarness.WaitUntil(() => training.LabelsTrained + training.SkippedLabels >= 408 && training.MalformedLabels == 8, TimeSpan.FromSeconds(60),
            () => $"408 labels trained or skipped and 8 set aside (so far {training.LabelsTrained} + {training.SkippedLabels}, {training.MalformedLabels})");

        var store = engine.Get<FeatureStore>();
        Assert.Equal(events.Max(e => e.TimeMs), store.Watermark.MaxEventTimeMs);
        Assert.Null(store.Read("skewed"));
        Assert.Equal(float.MaxValue, store.Read("huge")!["amount_sum_raw"]);
        var plan = store.Plan;
        var oracle = new FeatureOracle(plan);
        oracle.Apply([.. events.Select(e => EntityKey.Hash(stream.Key(e.Entity)))], [.. events.Select(e => e.TimeMs)], [[.. events.Select(e => e.Amount)]], []);
        foreach (int entity in events.Select(e => e.Entity).Distinct())
        {
            var read = store.Read(stream.Key(entity))!;
            for (int f = 0; f < plan.Count; f++)
            {
                double want = oracle.Value(EntityKey.Hash(stream.Key(entity)), f, store.Watermark.MaxEventTimeMs);
                Assert.True(Math.Abs(read[plan.Definitions[f].Name] - want) <= 1e-5 * Math.Max(1, Math.Abs(want)), $"{stream.Key(entity)} {plan.Definitions[f].Name}");
            }
        }
        Assert.Equal(["future_timestamp"], ReadDeadLetters(engine.BootstrapServers, 1));
        // Labels are set aside on their own topic.
        Assert.Equal(Enumerable.Repeat("bad_label", 8), ReadDeadLetters(engine.BootstrapServers, 8, KafkaOptions.DefaultLabelsDeadLetterTopic));
        var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
        var response = await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "huge" }, new ScoreRow { Entity = stream.Key(0) } } });
        Assert.All(response.Scores, score => Assert.True(float.IsFinite(score), $"score {score}"));
        Assert.True(engine.Get<Models.Registry.ModelRegistry>().CurrentParameters().IsFinite(), "the published model is finite");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Nothing_past_a_malformed_event_is_committed_until_its_dead_letter_is_written_with_its_key_time_and_headers(bool checkpoints)
    {
        var settings = Settings();
        settings["Inference:Training:Enabled"] = "false";
        string directory = Path.Combine(Path.GetTempPath(), "inference-dead-letters-" + Guid.NewGuid().ToString("N"));
        if (checkpoints)
        {
            // Commits follow checkpoints, and a checkpoint past a malformed event waits for its dead letter.
            settings["Inference:Checkpoints:Directory"] = directory;
            settings["Inference:Checkpoints:IntervalMs"] = "300";
        }
        await using var engine = await EngineHarness.StartAsync(settings);
        var broker = engine.Get<Kafka.KafkaConnection>().Embedded!;
        // The dead-letter topic has no leader: the engine's dead-letter producer holds the write and retries.
        broker.SetTopicError(KafkaOptions.DefaultDeadLetterTopic, ErrorCode.LeaderNotAvailable);
        var partition = new TopicPartition("events", 0);
        var stamp = new Timestamp(1_767_225_600_000, TimestampType.CreateTime);
        using (var producer = EngineHarness.Producer(engine.BootstrapServers))
        {
            for (int i = 0; i < 201; i++)
            {
                var value = i == 100 ? "{\"entity\":\"x\"}"u8.ToArray() : Encoding.UTF8.GetBytes($"{{\"entity\":\"e-{i % 7}\",\"ts\":{1_767_225_600_000 + i},\"amount\":1}}");
                producer.Produce(partition, new Message<string, byte[]>
                {
                    Key = i == 100 ? "bad-key" : $"e-{i % 7}",
                    Value = value,
                    Timestamp = i == 100 ? stamp : Timestamp.Default,
                    Headers = i == 100 ? new Headers { { "trace-id", "abc"u8.ToArray() } } : null,
                });
            }
            producer.FlushAll();
        }
        await engine.WaitTakenAsync(new Taken(200, Malformed: 1), TimeSpan.FromSeconds(30));

        using var offsets = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = engine.BootstrapServers, GroupId = "inference" }).Build();
        long Committed() => offsets.Committed([partition], TimeSpan.FromSeconds(10)).Single().Offset.Value;
        // Auto-commit runs every second: over three seconds nothing past the bad event (offset 100) may be committed.
        var watch = DateTime.UtcNow.AddSeconds(3);
        while (DateTime.UtcNow < watch)
        {
            long committed = Committed();
            Assert.True(committed <= 100, $"offset {committed} committed while the dead letter of offset 100 was not written");
            if (checkpoints && Checkpoints.CheckpointFiles.List(directory) is [.., var newest])
            {
                long held = newest.Manifest!.Events.Offsets.Where(o => o.Partition == 0).Select(o => o.Offset).DefaultIfEmpty(-1).Single();
                Assert.True(held < 100, $"checkpoint {newest.Sequence} holds offset {held} while the dead letter of offset 100 was not written");
            }
            await Task.Delay(200);
        }

        broker.SetTopicError(KafkaOptions.DefaultDeadLetterTopic, ErrorCode.NoError);
        await EngineHarness.WaitUntil(() => Committed() == 201, TimeSpan.FromSeconds(60), () => $"offset 201 committed once the dead letter is written (now {Committed()})");
        var letter = ReadDeadLetterMessages(engine.BootstrapServers, 1, KafkaOptions.DefaultDeadLetterTopic).Single();
        Assert.Equal("bad-key", Encoding.UTF8.GetString(letter.Key!));
        Assert.Equal(stamp.UnixTimestampMs, letter.Timestamp.UnixTimestampMs);
        Assert.Equal("abc", Encoding.UTF8.GetString(letter.Headers.GetLastBytes("trace-id")));
        Assert.Equal("missing_ts", Encoding.UTF8.GetString(letter.Headers.GetLastBytes("inference.error")));
        Assert.Equal("events/0/100", Encoding.UTF8.GetString(letter.Headers.GetLastBytes("inference.source")));
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Events_read_again_after_a_rebalance_and_a_rewound_offset_are_not_counted_twice()
    {
        var settings = Settings();
        settings["Inference:Training:Enabled"] = "false";
        await using var engine = await EngineHarness.StartAsync(settings);
        var stream = new SyntheticStream(entities: 100, seed: 13);
        var events = Enumerable.Range(0, 4_000).Select(_ => stream.NextEvent()).ToList();
        await engine.ProduceAndWaitAsync("events", events.Select(e => new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json }), new Taken(events.Count));

        // A second member joins the engine's group, takes partitions, commits them back to offset 0 and
        // leaves: the engine gets them back and reads every one of those events again.
        long rewound = 0;
        using (var member = new ConsumerBuilder<Ignore, byte[]>(new ConsumerConfig
        {
            BootstrapServers = engine.BootstrapServers,
            GroupId = "inference",
            EnableAutoCommit = false,
            SessionTimeoutMs = 6_000,
            PartitionAssignmentStrategy = PartitionAssignmentStrategy.CooperativeSticky,
        }).Build())
        {
            member.Subscribe("events");
            var until = DateTime.UtcNow.AddSeconds(30);
            while (member.Assignment.Count == 0 && DateTime.UtcNow < until)
            {
                member.Consume(100);
            }
            Assert.NotEmpty(member.Assignment);
            foreach (var partition in member.Assignment)
            {
                rewound += member.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10)).High.Value;
            }
            member.Commit([.. member.Assignment.Select(p => new TopicPartitionOffset(p, 0))]);
            member.Close();
        }
        var ingest = engine.Get<IngestMetrics>();
        await EngineHarness.WaitUntil(() => ingest.ReplayedEvents >= rewound, TimeSpan.FromSeconds(60),
            () => $"the {rewound} events of the rewound partitions read again and skipped (so far {ingest.ReplayedEvents})");
        Assert.Equal(events.Count, engine.Metrics.EventsApplied);
        AssertMatchesOracle(engine.Get<FeatureStore>(), stream, events);
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

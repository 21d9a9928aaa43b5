using System.Text;
using Confluent.Kafka;
using Inference.Demo;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Kernels.Features;
using Inference.Proto.V1;
using Inference.Testing;

namespace Inference.Engine.Tests;

/// <summary>What ingest commits and reads again: a labels rebalance, values beyond the ranges, dead letters before commits, rewound offsets.</summary>
public sealed partial class IngestTests
{
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
}

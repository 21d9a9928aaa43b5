using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Google.Protobuf;
using Inference.Engine.Kafka;
using Inference.Engine.Outputs;
using Inference.Proto.V1;
using Xunit.Abstractions;

namespace Inference.Engine.Tests;

/// <summary>
/// Stream scoring over real components: events scored as they are applied, to a scores topic checked
/// by the shared checker (<c>inference scores verify</c>, which does not trust read_committed: the
/// embedded broker does not filter aborted transactions), exactly once on a skewed stream, also
/// across SIGKILLs of <c>inference serve</c>.
/// </summary>
[Collection(nameof(KillsProcesses))]
public sealed class StreamScoringTests(ITestOutputHelper output) : IDisposable
{
    private const int Partitions = 8;
    private readonly string _root = Directory.CreateTempSubdirectory("inference-scores-").FullName;
    private bool _passed;

    [Fact]
    public async Task Every_selected_event_has_one_score_equal_to_what_Score_answers_for_its_state()
    {
        using var kafka = Broker();
        var settings = Settings(kafka, select: "score");
        await using var engine = await EngineHarness.StartAsync(settings);
        var outputs = engine.Get<OutputMetrics>();

        const int Events = 10_000;
        const int Entities = 500;
        var random = new Random(11);
        var selected = new HashSet<(int, long)>();
        var entityOf = new Dictionary<(int, long), string>();
        using (var producer = EngineHarness.Producer(kafka.BootstrapServers))
        {
            var pending = new List<Task<DeliveryResult<string, byte[]>>>();
            for (int i = 0; i < Events; i++)
            {
                string entity = $"user-{random.Next(Entities)}";
                bool score = i % 2 == 0;
                string json = string.Create(CultureInfo.InvariantCulture,
                    $"{{\"entity\":\"{entity}\",\"ts\":{1_767_225_600_000 + i},\"amount\":{random.Next(1, 500)}{(score ? ",\"score\":true" : i % 4 == 1 ? ",\"score\":false" : "")}}}");
                pending.Add(producer.ProduceAsync("events", new Message<string, byte[]> { Key = entity, Value = Encoding.UTF8.GetBytes(json) }));
            }
            for (int i = 0; i < Events; i++)
            {
                var delivered = await pending[i];
                if (i % 2 == 0)
                {
                    selected.Add((delivered.Partition.Value, delivered.Offset.Value));
                }
                entityOf[(delivered.Partition.Value, delivered.Offset.Value)] = Encoding.UTF8.GetString(delivered.Message.Value)[11..].Split('"')[0];
            }
        }
        await EngineHarness.WaitUntil(() => outputs.Scored == selected.Count, TimeSpan.FromSeconds(90),
            () => $"{selected.Count} events scored (so far {outputs.Scored}; applied {engine.Metrics.EventsApplied})");

        var records = ReadCommitted(kafka.BootstrapServers, "scores", selected.Count);
        var seen = new HashSet<(int, long)>();
        foreach (var record in records)
        {
            var at = (record.Source.Partition, record.Source.Offset);
            Assert.True(seen.Add(at), $"two scores for the event at {at}");
            Assert.Contains(at, selected);
            Assert.Equal(entityOf[at], record.Entity);
            Assert.Equal("events", record.Source.Topic);
        }
        Assert.Equal(selected.Count, seen.Count);

        // Entities whose newest event is a scored one: their state has not changed since (counts, sums and
        // last values move only with their own events, and training is off), so Score answers the same now.
        var client = new ScoringService.ScoringServiceClient(engine.Channel);
        var newestEvent = entityOf.GroupBy(e => e.Value).ToDictionary(g => g.Key, g => g.Max(e => e.Key));
        var newest = records.Where(r => newestEvent[r.Entity] == (r.Source.Partition, r.Source.Offset)).ToList();
        output.WriteLine($"{records.Count} scores for {selected.Count} selected of {Events} events; {newest.Count} entities end on a scored event");
        Assert.True(newest.Count > 100, $"only {newest.Count} entities end on a scored event");
        var request = new ScoreRequest();
        request.Rows.AddRange(newest.Select(r => new ScoreRow { Entity = r.Entity }));
        var response = await client.ScoreAsync(request, deadline: DateTime.UtcNow.AddSeconds(30));
        for (int i = 0; i < newest.Count; i++)
        {
            Assert.Equal(response.ModelVersion, newest[i].ModelVersion);
            Assert.True(Math.Abs(response.Scores[i] - newest[i].Score) <= 1e-6,
                $"{newest[i].Entity}: scored {newest[i].Score:R} on the stream, Score answers {response.Scores[i]:R}");
        }
        _passed = true;
    }

    [Fact]
    public async Task With_Format_Protobuf_each_record_is_a_ScoredEvent_message_with_its_content_type()
    {
        using var kafka = Broker();
        var settings = Settings(kafka, select: "All");
        settings["Inference:Outputs:Scores:Format"] = "Protobuf";
        settings["Inference:Outputs:Scores:IncludeFeatures"] = "true";
        await using var engine = await EngineHarness.StartAsync(settings);
        var outputs = engine.Get<OutputMetrics>();
        using (var producer = EngineHarness.Producer(kafka.BootstrapServers))
        {
            // Protobuf events in, as gRPC ingestion writes them.
            for (int i = 0; i < 500; i++)
            {
                var e = new Event { Entity = $"user-{i % 50}", Ts = 1_767_225_600_000 + i, Values = { ["amount"] = i } };
                producer.Produce("events", new Message<string, byte[]>
                {
                    Key = e.Entity,
                    Value = e.ToByteArray(),
                    Headers = new Headers { { "content-type", "application/x-protobuf"u8.ToArray() } },
                });
            }
            producer.FlushAll();
        }
        await EngineHarness.WaitUntil(() => outputs.Scored == 500, TimeSpan.FromSeconds(60), () => $"500 events scored (so far {outputs.Scored})");
        var messages = ReadAll(kafka.BootstrapServers, "scores");
        Assert.Equal(500, messages.Count);
        var records = messages.Select(m =>
        {
            Assert.True(m.Headers.TryGetLastBytes("content-type", out var type));
            Assert.Equal("application/x-protobuf; messageType=inference.v1.ScoredEvent", Encoding.UTF8.GetString(type));
            return ScoredEvent.Parser.ParseFrom(m.Value);
        }).ToList();
        Assert.Equal(500, records.Select(r => (r.Source.Partition, r.Source.Offset)).Distinct().Count());
        Assert.All(records, r => Assert.Equal(3, r.Features.Count));
        Assert.All(records, r => Assert.True(r.AppliedOffset >= r.Source.Offset, $"applied offset {r.AppliedOffset} before the event's own {r.Source.Offset}"));
        Assert.All(records, r => Assert.Null(r.Watermark));
        Assert.All(messages, m => Assert.True(m.Headers.TryGetLastBytes("inference.transaction", out _) && m.Headers.TryGetLastBytes("inference.producer", out _)));
        Assert.All(messages, m => Assert.StartsWith("user-", m.Key));
    }

    [Fact]
    public async Task Every_event_of_a_skewed_stream_is_scored_exactly_once()
    {
        using var kafka = Broker();
        var stream = SkewedStream.Create(Events, seed: 5);
        await SkewedStream.ProduceAsync(kafka.BootstrapServers, stream, eventsPerSecond: 0);
        string log = Path.Combine(_root, "engine.log");
        using (var engine = EngineProcess.Start(ServeSwitches(kafka, Path.Combine(_root, "checkpoints")), log))
        {
            await engine.WaitReadyAsync(TimeSpan.FromSeconds(120));
            await WaitCoveredAsync(kafka.BootstrapServers, engine, TimeSpan.FromSeconds(180));
            Assert.Equal(0, engine.Stop(TimeSpan.FromSeconds(30)));
        }
        var report = VerifyByCommand(kafka.BootstrapServers);
        output.WriteLine($"{report.Records} records, {report.Events} events, {report.Duplicates} duplicates, {report.MissingEvents} missing, {report.Discarded} discarded; hottest entity {stream.HotShare:P1} of the events");
        Assert.True(report.Exact, string.Join("\n", ScoresVerifier.Describe(report)));
        Assert.Equal(Events, report.Events);
        _passed = true;
    }

    [Fact]
    public async Task Every_event_of_a_skewed_stream_is_scored_exactly_once_across_10_SIGKILLs()
    {
        using var kafka = Broker();
        const int Kills = 10;
        var stream = SkewedStream.Create(Events, seed: 7);
        string checkpoints = Path.Combine(_root, "checkpoints");
        string log = Path.Combine(_root, "engine.log");
        output.WriteLine($"engine log and checkpoints in {_root} (kept if the test fails); hottest entity {stream.HotShare:P1} of the events");
        var switches = ServeSwitches(kafka, checkpoints);
        // About 1,400 events a second: the stream spans the kills.
        var producing = SkewedStream.ProduceAsync(kafka.BootstrapServers, stream, eventsPerSecond: 1_400);
        var random = new Random(7);
        for (int kill = 0; kill < Kills; kill++)
        {
            using var engine = EngineProcess.Start(switches, log);
            await engine.WaitUpAsync(TimeSpan.FromSeconds(60));
            // Killed while it scores: once this run has produced scores of its own, at a random moment after.
            long before = ScoreRecordsWritten(kafka.BootstrapServers);
            var scoring = DateTime.UtcNow.AddSeconds(60);
            while (ScoreRecordsWritten(kafka.BootstrapServers) < before + 200 && DateTime.UtcNow < scoring && !engine.HasExited && !producing.IsCompleted)
            {
                await Task.Delay(50);
            }
            await Task.Delay(TimeSpan.FromMilliseconds(random.Next(1_500)));
            Assert.False(engine.HasExited, $"The engine exited by itself before kill {kill + 1}. Its log:\n{engine.Tail()}");
            engine.Crash();
            output.WriteLine($"kill {kill + 1}: {ScoreRecordsWritten(kafka.BootstrapServers) - before} records written in this run");
        }
        await producing;
        using (var last = EngineProcess.Start(switches, log))
        {
            await last.WaitReadyAsync(TimeSpan.FromSeconds(120));
            await WaitCoveredAsync(kafka.BootstrapServers, last, TimeSpan.FromSeconds(180));
            Assert.Equal(0, last.Stop(TimeSpan.FromSeconds(30)));
        }
        var report = VerifyByCommand(kafka.BootstrapServers);
        output.WriteLine($"{report.Records} records, {report.Events} events, {report.Duplicates} duplicates, {report.MissingEvents} missing, {report.Discarded} discarded after {Kills} kills");
        foreach (string line in File.ReadLines(log).Where(l => l.Contains("resuming after", StringComparison.Ordinal)))
        {
            output.WriteLine(line);
        }
        Assert.True(report.Exact, string.Join("\n", ScoresVerifier.Describe(report)));
        Assert.Equal(Events, report.Events);
        // The kills did cut transactions off: the checker had records to set aside (else it proved little).
        Assert.True(report.Discarded > 0 || report.Records == Events, "no record of an unfinished transaction was seen");
        _passed = true;
    }

    [Fact]
    public async Task A_restart_that_cannot_read_its_progress_topic_does_not_start_and_names_it()
    {
        using var kafka = Broker();
        string log = Path.Combine(_root, "engine.log");
        // The broker answers every request for the progress topic with an error: the read cannot complete.
        kafka.SetTopicError("scores.progress", ErrorCode.LeaderNotAvailable);
        string[] switches = [.. ServeSwitches(kafka, Path.Combine(_root, "checkpoints")), "--Inference:Outputs:Scores:ProgressReadTimeoutMs=3000"];
        using var engine = EngineProcess.Start(switches, log);
        Assert.True(await engine.WaitForExitAsync(TimeSpan.FromSeconds(90)), $"the engine kept running without its progress. Its log:\n{engine.Tail()}");
        string text = engine.Tail(200);
        Assert.Contains("scores.progress", text, StringComparison.Ordinal);
        Assert.Contains("Stream scoring cannot start", text, StringComparison.Ordinal);
        _passed = true;
    }

    private const int Events = 100_000;

    private static string[] ServeSwitches(EmbeddedKafka kafka, string checkpoints) =>
    [
        "--bootstrap-servers", kafka.BootstrapServers,
        "--group-id", "scoring",
        "--checkpoints", checkpoints,
        "--accelerator", "Cpu",
        "--Inference:Serving:HttpPort=-1",
        "--Inference:Checkpoints:IntervalMs=700",
        "--Inference:Kafka:SessionTimeoutMs=3000",
        "--Inference:Training:Enabled=false",
        "--Inference:Outputs:Scores:Enabled=true",
        "--Logging:LogLevel:Default=Information",
    ];

    /// <summary>Records written to the scores topic so far, committed or not (the sum of its partitions' end offsets).</summary>
    private static long ScoreRecordsWritten(string bootstrapServers)
    {
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = "watermarks" }).Build();
        long sum = 0;
        for (int p = 0; p < Partitions; p++)
        {
            sum += consumer.QueryWatermarkOffsets(new TopicPartition("scores", p), TimeSpan.FromSeconds(10)).High.Value;
        }
        return sum;
    }

    /// <summary>Waits until the committed progress covers every event of the events topic (by the shared checker).</summary>
    private async Task WaitCoveredAsync(string bootstrapServers, EngineProcess engine, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        ScoresReport report;
        while ((report = ScoresVerifier.Verify(TimeProvider.System, new ConsumerConfig { BootstrapServers = bootstrapServers }, "scores", "scores.progress", "events", complete: true, TimeSpan.FromSeconds(60))).Uncovered > 0)
        {
            Assert.False(engine.HasExited, $"The engine exited. Its log:\n{engine.Tail()}");
            Assert.True(DateTime.UtcNow < deadline, $"{report.Uncovered} events still past the committed progress after {timeout.TotalSeconds:0} s:\n{string.Join("\n", ScoresVerifier.Describe(report))}");
            await Task.Delay(1_000);
        }
        output.WriteLine($"covered: {report.Records} records so far");
    }

    /// <summary><c>inference scores verify --events events --complete --json</c>, as a user runs it; its report.</summary>
    private ScoresReport VerifyByCommand(string bootstrapServers)
    {
        var (exit, text) = EngineProcess.RunCommand("scores", "verify", "--bootstrap-servers", bootstrapServers, "--topic", "scores", "--events", "events", "--complete", "--json");
        string json = text.Split('\n').First(l => l.StartsWith('{'));
        var report = System.Text.Json.JsonSerializer.Deserialize<ScoresReport>(json, new System.Text.Json.JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
        Assert.Equal(report.Exact ? 0 : 1, exit);
        return report;
    }

    public void Dispose()
    {
        if (_passed)
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    internal static EmbeddedKafka Broker()
    {
        var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        kafka.CreateTopic("labels", Partitions);
        kafka.CreateTopic("events.dead-letter", 1);
        kafka.CreateTopic("labels.dead-letter", 1);
        kafka.CreateTopic("scores", Partitions);
        kafka.CreateTopic("scores.progress", 1);
        kafka.CreateTopic("alerts", 2);
        kafka.CreateTopic("alerts.dead-letter", 1);
        return kafka;
    }

    internal static Dictionary<string, string?> Settings(EmbeddedKafka kafka, string select)
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Training:Enabled"] = "false";
        EngineHarness.Declare(settings,
            ("count", "Count", null, null),
            ("amount_sum", "Sum", "amount", null),
            ("amount_last", "Last", "amount", null));
        settings["Inference:Outputs:Scores:Enabled"] = "true";
        settings["Inference:Outputs:Scores:Select"] = select;
        return settings;
    }

    /// <summary>Every committed record of a topic (read_committed), from the start to its end now, as JSON <see cref="ScoredEvent"/>s.</summary>
    internal static List<ScoredEvent> ReadCommitted(string bootstrapServers, string topic, int expected)
    {
        var records = new List<ScoredEvent>();
        foreach (var message in ReadAll(bootstrapServers, topic))
        {
            records.Add(ScoredEvent.Parser.ParseJson(Encoding.UTF8.GetString(message.Value)));
        }
        Assert.True(records.Count >= expected, $"{topic} holds {records.Count} committed records; expected at least {expected}");
        return records;
    }

    internal static int CountCommitted(string bootstrapServers, string topic) => ReadAll(bootstrapServers, topic).Count;

    internal static List<Message<string, byte[]>> ReadAll(string bootstrapServers, string topic)
    {
        var config = new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "reader-" + Guid.NewGuid().ToString("N"),
            IsolationLevel = IsolationLevel.ReadCommitted,
            EnableAutoCommit = false,
        };
        using var consumer = new ConsumerBuilder<string, byte[]>(config).Build();
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
        int partitions = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics[0].Partitions.Count;
        var ends = new Dictionary<int, long>();
        var assignment = new List<TopicPartitionOffset>();
        for (int p = 0; p < partitions; p++)
        {
            var tp = new TopicPartition(topic, p);
            ends[p] = consumer.QueryWatermarkOffsets(tp, TimeSpan.FromSeconds(10)).High.Value;
            assignment.Add(new TopicPartitionOffset(tp, Offset.Beginning));
        }
        consumer.Assign(assignment);
        var messages = new List<Message<string, byte[]>>();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline && ends.Any(e => e.Value > 0 && consumer.Position(new TopicPartition(topic, e.Key)).Value < e.Value))
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(100));
            if (result?.Message is not null)
            {
                messages.Add(result.Message);
            }
        }
        return messages;
    }
}

using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Inference.Proto.V1;

namespace Inference.Engine.Outputs;

/// <summary>What <see cref="ScoresVerifier"/> found on a scores topic.</summary>
internal sealed record ScoresReport
{
    /// <summary>Score records of committed transactions.</summary>
    public long Records { get; init; }

    /// <summary>Distinct events they score.</summary>
    public long Events { get; init; }

    /// <summary>Committed records for an event that another committed record already scores.</summary>
    public long Duplicates { get; init; }

    /// <summary>Records of transactions no progress record names committed (aborted, or cut off by a crash): not counted.</summary>
    public long Discarded { get; init; }

    /// <summary>Records without the transaction headers: they cannot be checked.</summary>
    public long Unattributed { get; init; }

    /// <summary>Committed transactions checked.</summary>
    public long Transactions { get; init; }

    /// <summary>Records that committed transactions declared but the topic no longer holds.</summary>
    public long MissingRecords { get; init; }

    /// <summary>With the events topic: events within the committed progress that no committed record scores.</summary>
    public long MissingEvents { get; init; }

    /// <summary>With the events topic: events past the committed progress (not yet scored, or not selected).</summary>
    public long Uncovered { get; init; }

    /// <summary>Records the topics dropped from their start (retention), per topic and partition.</summary>
    public IReadOnlyList<string> Truncated { get; init; } = [];

    /// <summary>Up to 20 examples of each problem.</summary>
    public IReadOnlyList<string> Examples { get; init; } = [];

    /// <summary>Every committed event exactly once, nothing missing or unverifiable (and with <c>complete</c>, every event covered).</summary>
    public bool Exact { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, ReportJson.Options);

    private static class ReportJson
    {
        public static readonly JsonSerializerOptions Options = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
    }
}

/// <summary>
/// The shared checker of stream scoring's exactly-once output (<c>inference scores verify</c>, and the
/// tests): it reconstructs the committed transactions from the progress records alone, as a restart
/// does (a transaction is committed when a later progress record names it as its base), so it holds
/// on brokers that do not filter aborted transactions (the embedded one) as on those that do, and it
/// reads every topic with <c>read_uncommitted</c>.
/// </summary>
internal static class ScoresVerifier
{
    private const int MaxExamples = 20;

    /// <param name="scoresTopic">The scores topic.</param>
    /// <param name="progressTopic">Its progress topic.</param>
    /// <param name="time">The clock of the timeout.</param>
    /// <param name="timeout">How long reading each topic may take.</param>
    /// <param name="config">Consumer settings (bootstrap servers, security); a group id of its own is set.</param>
    /// <param name="eventsTopic">When given, every event of it within the committed progress must be scored (with <c>Select=All</c>; index 0 of each message).</param>
    /// <param name="complete">Every event of the events topic must be within the committed progress.</param>
    public static ScoresReport Verify(TimeProvider time, ConsumerConfig config, string scoresTopic, string progressTopic, string? eventsTopic, bool complete, TimeSpan timeout)
    {
        config.GroupId ??= "inference-scores-verify-" + Guid.NewGuid().ToString("N");
        var examples = new List<string>();
        var truncated = new List<string>();
        var progress = ProgressTopic.ReadAll(time, new ConsumerConfig(config.ToDictionary(p => p.Key, p => p.Value)), progressTopic, timeout);

        // Committed: every transaction some record names as its base (and records of the format before names, as they were trusted).
        var committed = new HashSet<(string Producer, TransactionName Name)>();
        var declared = new Dictionary<(string, TransactionName), int>();
        var covered = new Dictionary<(string Topic, int Partition), ScoredPosition>();
        foreach (var (_, record) in progress)
        {
            declared[(record.TransactionalId, record.Name)] = record.Records;
            if (record.Base is { } based)
            {
                committed.Add((record.TransactionalId, based));
            }
            if (record.Name.Generation == 0)
            {
                committed.Add((record.TransactionalId, record.Name));
            }
            foreach (var (partition, at) in record.Committed)
            {
                Raise(covered, (record.Topic, partition), at);
            }
        }

        var scored = new HashSet<(string Topic, int Partition, long Offset, int Index)>();
        var found = new Dictionary<(string, TransactionName), int>();
        long records = 0, duplicates = 0, discarded = 0, unattributed = 0;
        ReadAll(time, config, scoresTopic, timeout, truncated, (partition, offset, message) =>
        {
            if (!TryHeader(message.Headers, "inference.producer", out string? producer) || !TryHeader(message.Headers, "inference.transaction", out string? transaction)
                || !TryName(transaction!, out var name))
            {
                unattributed++;
                Example(examples, $"record without transaction headers at {scoresTopic}/{partition}@{offset}");
                return;
            }
            if (!committed.Contains((producer!, name)))
            {
                discarded++;
                return;
            }
            var e = Parse(message);
            records++;
            found[(producer!, name)] = found.GetValueOrDefault((producer!, name)) + 1;
            if (!scored.Add((e.Source.Topic, e.Source.Partition, e.Source.Offset, e.Source.Index)))
            {
                duplicates++;
                Example(examples, $"event {e.Source.Topic}/{e.Source.Partition}@{e.Source.Offset}#{e.Source.Index} scored again at {scoresTopic}/{partition}@{offset} (transaction {producer} {name})");
            }
        });

        long missingRecords = 0;
        foreach (var key in committed)
        {
            if (declared.TryGetValue(key, out int count) && found.GetValueOrDefault(key) < count)
            {
                missingRecords += count - found.GetValueOrDefault(key);
                Example(examples, $"transaction {key.Producer} {key.Name} declared {count} records, the topic holds {found.GetValueOrDefault(key)}");
            }
        }

        long missingEvents = 0, uncovered = 0;
        if (eventsTopic is not null)
        {
            ReadAll(time, config, eventsTopic, timeout, truncated, (partition, offset, _) =>
            {
                if (!covered.TryGetValue((eventsTopic, partition), out var upTo) || new ScoredPosition(offset, 0).CompareTo(upTo) > 0)
                {
                    uncovered++;
                    return;
                }
                if (!scored.Contains((eventsTopic, partition, offset, 0)))
                {
                    missingEvents++;
                    Example(examples, $"event {eventsTopic}/{partition}@{offset} is within the committed progress but has no committed score");
                }
            });
            if (complete && uncovered > 0)
            {
                Example(examples, $"{uncovered} events of {eventsTopic} are past the committed progress");
            }
        }
        return new ScoresReport
        {
            Records = records,
            Events = scored.Count,
            Duplicates = duplicates,
            Discarded = discarded,
            Unattributed = unattributed,
            Transactions = committed.Count,
            MissingRecords = missingRecords,
            MissingEvents = missingEvents,
            Uncovered = uncovered,
            Truncated = truncated,
            Examples = examples,
            Exact = duplicates == 0 && unattributed == 0 && missingRecords == 0 && missingEvents == 0 && truncated.Count == 0 && (!complete || uncovered == 0),
        };
    }

    /// <summary>The report as lines for people.</summary>
    public static IEnumerable<string> Describe(ScoresReport report)
    {
        var c = CultureInfo.InvariantCulture;
        yield return string.Create(c, $"{(report.Exact ? "EXACT" : "NOT EXACT")}: {report.Records:N0} committed records in {report.Transactions:N0} transactions score {report.Events:N0} events");
        yield return string.Create(c, $"  duplicates      {report.Duplicates:N0}");
        yield return string.Create(c, $"  missing         {report.MissingEvents:N0} events within the committed progress, {report.MissingRecords:N0} records committed transactions declared");
        yield return string.Create(c, $"  not committed   {report.Discarded:N0} records of aborted or unfinished transactions (ignored)");
        if (report.Unattributed > 0)
        {
            yield return string.Create(c, $"  unattributed    {report.Unattributed:N0} records without transaction headers");
        }
        if (report.Uncovered > 0)
        {
            yield return string.Create(c, $"  uncovered       {report.Uncovered:N0} events past the committed progress");
        }
        foreach (string line in report.Truncated)
        {
            yield return "  truncated       " + line;
        }
        foreach (string example in report.Examples)
        {
            yield return "  e.g.            " + example;
        }
    }

    private static void Raise(Dictionary<(string, int), ScoredPosition> positions, (string, int) key, ScoredPosition at)
    {
        if (!positions.TryGetValue(key, out var known) || at.CompareTo(known) > 0)
        {
            positions[key] = at;
        }
    }

    private static void Example(List<string> examples, string text)
    {
        if (examples.Count < MaxExamples)
        {
            examples.Add(text);
        }
    }

    private static bool TryHeader(Headers? headers, string name, out string? value)
    {
        value = null;
        if (headers is null || !headers.TryGetLastBytes(name, out var bytes))
        {
            return false;
        }
        value = Encoding.UTF8.GetString(bytes);
        return true;
    }

    private static bool TryName(string text, out TransactionName name)
    {
        name = default;
        int dot = text.IndexOf('.', StringComparison.Ordinal);
        if (dot <= 0 || !long.TryParse(text.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out long generation)
            || !long.TryParse(text.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long sequence))
        {
            return false;
        }
        name = new TransactionName(generation, sequence);
        return true;
    }

    private static ScoredEvent Parse(Message<Ignore, byte[]> message) =>
        TryHeader(message.Headers, "content-type", out string? type) && type!.StartsWith("application/x-protobuf", StringComparison.Ordinal)
            ? ScoredEvent.Parser.ParseFrom(message.Value)
            : ScoredEvent.Parser.ParseJson(Encoding.UTF8.GetString(message.Value));

    /// <summary>Every record of every partition of <paramref name="topic"/>, from its start to its end now (read_uncommitted).</summary>
    private static void ReadAll(TimeProvider time, ConsumerConfig settings, string topic, TimeSpan timeout, List<string> truncated, Action<int, long, Message<Ignore, byte[]>> handle)
    {
        var config = new ConsumerConfig(settings.ToDictionary(p => p.Key, p => p.Value))
        {
            EnableAutoCommit = false,
            IsolationLevel = IsolationLevel.ReadUncommitted,
            EnablePartitionEof = true,
        };
        using var consumer = new ConsumerBuilder<Ignore, byte[]>(config).Build();
        var adminConfig = new AdminClientConfig(settings.Where(p => p.Key is "bootstrap.servers" || p.Key.StartsWith("security.", StringComparison.Ordinal)
            || p.Key.StartsWith("ssl.", StringComparison.Ordinal) || p.Key.StartsWith("sasl.", StringComparison.Ordinal)).ToDictionary(p => p.Key, p => p.Value));
        using var admin = new AdminClientBuilder(adminConfig).Build();
        var metadata = admin.GetMetadata(topic, timeout).Topics.Find(t => t.Topic == topic);
        if (metadata is null || metadata.Error.IsError || metadata.Partitions.Count == 0)
        {
            throw new InvalidOperationException($"topic '{topic}' was not found ({metadata?.Error.Reason ?? "no metadata"})");
        }
        var open = new HashSet<int>();
        var assignment = new List<TopicPartitionOffset>();
        foreach (var p in metadata.Partitions.Select(p => p.PartitionId).Order())
        {
            var marks = consumer.QueryWatermarkOffsets(new TopicPartition(topic, p), timeout);
            if (marks.Low.Value > 0)
            {
                truncated.Add(string.Create(CultureInfo.InvariantCulture, $"{topic}/{p}: its first {marks.Low.Value:N0} records are gone (retention)"));
            }
            if (marks.High.Value > marks.Low.Value)
            {
                open.Add(p);
                assignment.Add(new TopicPartitionOffset(topic, p, marks.Low));
            }
        }
        consumer.Assign(assignment);
        long started = time.GetTimestamp();
        while (open.Count > 0)
        {
            if (time.GetElapsedTime(started) > timeout)
            {
                throw new TimeoutException($"topic '{topic}' was not read to its end within {timeout.TotalSeconds:0} s");
            }
            var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (result is null)
            {
                continue;
            }
            if (result.IsPartitionEOF)
            {
                open.Remove(result.Partition.Value);
                continue;
            }
            handle(result.Partition.Value, result.Offset.Value, result.Message);
        }
    }
}

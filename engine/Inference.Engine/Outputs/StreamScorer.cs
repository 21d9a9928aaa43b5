using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Confluent.Kafka;
using Google.Protobuf;
using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Kernels.Features;
using Inference.Models.Registry;
using Inference.Proto.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using FeatureWatermark = Inference.Engine.Features.FeatureWatermark;

namespace Inference.Engine.Outputs;

/// <summary>
/// Stream scoring: the events that <see cref="ScoreOutputOptions.Select"/> picks are scored right after
/// their micro-batch is applied, from the state that batch produced (the executor reads their
/// entities' features before any other work: what <c>Score</c> would answer at that watermark), and
/// produced to the scores topic, with the alerts their scores raise, in Kafka transactions.
/// </summary>
/// <remarks>
/// Exactly once relative to the checkpointed offsets: each transaction also writes, to the progress
/// topic, how far it scored per source partition (offset, and index within a message of many
/// events). After a crash the state is restored from the newest checkpoint and the events after it
/// applied again; those at or below the committed progress are not scored again, and a checkpoint
/// is only written once every score of the events it covers is committed, so none is missing
/// either. Transactions make each batch's records, alerts and progress visible together or not at
/// all (read them with <c>isolation.level=read_committed</c>), and a restarted producer with the
/// same transactional id fences the one before it.
/// </remarks>
internal sealed class StreamScorer : BackgroundService, IScoredBatchSink, ICheckpointedOutput
{
    // A transaction spans the applied batches waiting when it begins, within bounds: one commit per few
    // milliseconds under load, never one so large that its commit stalls ingest (backpressure) for long.
    private const int MaxBatchesPerTransaction = 64;
    private const int MaxRowsPerTransaction = 16_384;
    private const int RetryDelayMs = 1_000;
    private static readonly byte[] JsonContentType = "application/json"u8.ToArray();
    private static readonly byte[] ScoredContentType = "application/x-protobuf; messageType=inference.v1.ScoredEvent"u8.ToArray();
    private static readonly byte[] AlertContentType = "application/x-protobuf; messageType=inference.v1.Alert"u8.ToArray();

    private readonly KafkaConnection _kafka;
    private readonly ModelRegistry _registry;
    private readonly OutputMetrics _metrics;
    private readonly AlertHub _hub;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<StreamScorer> _logger;
    private readonly ScoreOutputOptions _options;
    private readonly AlertOptions _alerts;
    private readonly string _eventsTopic;
    private readonly string _transactionalId;
    private readonly (AlertRule Rule, int Feature)[] _rules;
    private readonly bool _raw;
    private readonly int _width;
    private readonly Channel<ScoredBatch> _queue = Channel.CreateUnbounded<ScoredBatch>(new UnboundedChannelOptions { SingleReader = true });
    private readonly SemaphoreSlim _room = new(0);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Dictionary<int, (long Offset, int Index)> _progress = [];
    private long _enqueued;
    private long _committed;

    public StreamScorer(KafkaConnection kafka, ModelRegistry registry, DeviceExecutor executor, OutputMetrics metrics, AlertHub hub, IHostApplicationLifetime lifetime,
        CheckpointCoordinator checkpoints, IOptions<ScoreOutputOptions> options, IOptions<AlertOptions> alerts, ILogger<StreamScorer> logger)
    {
        checkpoints.Output = this;
        // On the embedded broker: the outputs' topics (the progress topic needs one partition only).
        kafka.EnsureEmbeddedTopic(options.Value.Topic);
        kafka.EnsureEmbeddedTopic(options.Value.ProgressTopic, partitions: 1);
        kafka.EnsureEmbeddedTopic(alerts.Value.Topic);
        kafka.EnsureEmbeddedTopic(alerts.Value.DeadLetterTopic);
        _kafka = kafka;
        _registry = registry;
        _metrics = metrics;
        _hub = hub;
        _lifetime = lifetime;
        _logger = logger;
        _options = options.Value;
        _alerts = alerts.Value;
        _eventsTopic = kafka.Options.EventsTopic;
        _transactionalId = string.IsNullOrWhiteSpace(_options.TransactionalId) ? $"{kafka.Options.GroupId}-scores" : _options.TransactionalId;
        var names = executor.Plan.Definitions.Select(d => d.Name).ToList();
        _rules = [.. _alerts.Rules.Select(r => (r, r.Feature is null ? -1 : names.IndexOf(r.Feature)))];
        _raw = _rules.Any(r => r.Feature >= 0);
        Selector = new ScoreSelector(_options.SelectsAll ? null : _options.Select);
        _width = names.Count;
    }

    /// <summary>What the ingest thread uses to pick the events to score.</summary>
    public ScoreSelector Selector { get; }

    /// <summary>Applied batches with selected events handed over so far.</summary>
    public long Enqueued => Interlocked.Read(ref _enqueued);

    /// <summary>Of those, the ones whose scores are committed.</summary>
    public long Committed => Interlocked.Read(ref _committed);

    /// <summary>Completes once the producer is initialised and the committed progress read (before the first event is scored).</summary>
    public Task Ready => _ready.Task;

    /// <summary>On the executor, right after a batch with selected events is applied: reads their features from that state.</summary>
    public void Applied(MicroBatch batch, FeatureTable table, Func<FeatureWatermark> watermark)
    {
        var selected = batch.Selected;
        int rows = selected.Count;
        var state = watermark();
        var item = new ScoredBatch(rows, table.Width, _raw) { Watermark = state, Topic = _eventsTopic };
        var keys = new ulong[rows];
        var entities = batch.Entities;
        var times = batch.Times;
        for (int i = 0; i < rows; i++)
        {
            int row = selected.Rows[i];
            keys[i] = entities[row];
            item.EventTimesMs[i] = times[row];
        }
        selected.Entities.CopyTo(item.Entities);
        selected.Partitions.CopyTo(item.Partitions);
        selected.Offsets.CopyTo(item.Offsets);
        selected.Indexes.CopyTo(item.Indexes);
        selected.Timestamps.CopyTo(item.TimestampsMs);
        // As Score reads: decayed and windowed values as of the newest event applied.
        table.Gather(keys, state.MaxEventTimeMs, item.Features);
        if (_raw)
        {
            table.Gather(keys, state.MaxEventTimeMs, item.Raw, transform: false);
        }
        Interlocked.Increment(ref _enqueued);
        _queue.Writer.TryWrite(item);
    }

    public void WaitForRoom(CancellationToken cancellation)
    {
        while (Enqueued - Committed >= _options.MaxPendingBatches && !cancellation.IsCancellationRequested)
        {
            _room.Wait(100, CancellationToken.None);
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken stopping)
    {
        var config = _kafka.ProducerConfig();
        config.TransactionalId = _transactionalId;
        config.Acks = Acks.All;
        // A transaction here lasts milliseconds. The broker aborts one left open by a crashed producer at
        // this timeout at the latest (Kafka's default is 60 s; a restart may wait that long for the fence).
        config.TransactionTimeoutMs = 10_000;
        using var producer = new ProducerBuilder<string, byte[]>(config).Build();
        try
        {
            producer.InitTransactions(TimeSpan.FromSeconds(60));
            _progress = ReadProgress();
        }
        catch (KafkaException error)
        {
            OutputsLog.Fatal(_logger, error.Message);
            _ready.TrySetException(error);
            _lifetime.StopApplication();
            return;
        }
        OutputsLog.Started(_logger, _options.SelectsAll ? "all" : $"'{_options.Select}'-selected", _eventsTopic, _options.Topic, _options.Format, _transactionalId, Describe(_progress));
        _ready.TrySetResult();
        var items = new List<ScoredBatch>();
        var reader = _queue.Reader;
        while (true)
        {
            items.Clear();
            try
            {
                if (!reader.WaitToReadAsync(stopping).AsTask().GetAwaiter().GetResult())
                {
                    break;
                }
            }
            catch (OperationCanceledException)
            {
                // Stopping: what was applied before the stop is still committed below.
            }
            int rows = 0;
            while (items.Count < MaxBatchesPerTransaction && rows < MaxRowsPerTransaction && reader.TryRead(out var item))
            {
                items.Add(item);
                rows += item.Rows;
            }
            if (items.Count == 0)
            {
                if (stopping.IsCancellationRequested)
                {
                    break;
                }
                continue;
            }
            if (!Commit(producer, items))
            {
                return;
            }
        }
    }

    /// <summary>One transaction over <paramref name="items"/>, retried until it commits; false when it never can.</summary>
    private bool Commit(IProducer<string, byte[]> producer, List<ScoredBatch> items)
    {
        while (true)
        {
            var progress = new Dictionary<int, (long, int)>(_progress);
            var alerts = new List<(string Id, string Json)>();
            int scored = 0;
            int replayed = 0;
            try
            {
                producer.BeginTransaction();
                foreach (var item in items)
                {
                    (int s, int r) = Produce(producer, item, progress, alerts);
                    scored += s;
                    replayed += r;
                }
                // Always partition 0: a restart reads the progress from there, whatever the topic's partition count.
                producer.Produce(new TopicPartition(_options.ProgressTopic, 0), new Message<string, byte[]> { Key = _transactionalId, Value = ProgressRecord(progress) });
                producer.CommitTransaction(TimeSpan.FromSeconds(60));
            }
            catch (KafkaException error) when (!IsFatal(error))
            {
                _metrics.Failure();
                OutputsLog.Retrying(_logger, error.Message);
                try
                {
                    producer.AbortTransaction(TimeSpan.FromSeconds(30));
                }
                catch (KafkaException abort) when (!IsFatal(abort))
                {
                    // The next BeginTransaction says whether the producer can go on.
                }
                catch (KafkaException abort)
                {
                    return Stop(abort);
                }
                Thread.Sleep(RetryDelayMs);
                continue;
            }
            catch (KafkaException error)
            {
                return Stop(error);
            }
            _progress = progress;
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            foreach (var item in items)
            {
                foreach (long timestamp in item.TimestampsMs)
                {
                    if (timestamp > 0)
                    {
                        _metrics.Latency(Math.Max(0, now - timestamp) / 1e3);
                    }
                }
            }
            _metrics.Committed(scored, replayed);
            Interlocked.Add(ref _committed, items.Count);
            _room.Release();
            _hub.Publish(alerts);
            return true;
        }
    }

    private bool Stop(KafkaException error)
    {
        OutputsLog.Fatal(_logger, error.Message);
        _lifetime.StopApplication();
        return false;
    }

    private static bool IsFatal(KafkaException error) =>
        error.Error.IsFatal || error.Error.Code is ErrorCode.ProducerFenced or ErrorCode.InvalidProducerEpoch or ErrorCode.TransactionalIdAuthorizationFailed;

    /// <summary>Scores one applied batch's selected events and produces their records and alerts; returns (scored, replayed).</summary>
    private (int Scored, int Replayed) Produce(IProducer<string, byte[]> producer, ScoredBatch item, Dictionary<int, (long Offset, int Index)> progress, List<(string, string)> alerts)
    {
        int rows = item.Rows;
        var scores = new float[rows];
        long version;
        using (var lease = _registry.Acquire())
        {
            lease.Snapshot.Score(item.Features, rows, scores);
            version = lease.Snapshot.Version;
        }
        var watermark = item.Watermark.Message;
        int scored = 0;
        int replayed = 0;
        for (int i = 0; i < rows; i++)
        {
            int partition = item.Partitions[i];
            var at = (item.Offsets[i], item.Indexes[i]);
            if (progress.TryGetValue(partition, out var done) && at.CompareTo(done) <= 0)
            {
                replayed++;
                continue;
            }
            progress[partition] = at;
            var record = new ScoredEvent
            {
                Entity = item.Entities[i],
                Source = new EventSource { Topic = item.Topic, Partition = partition, Offset = item.Offsets[i], Index = item.Indexes[i] },
                Score = scores[i],
                ModelVersion = version,
                EventTimeMs = item.EventTimesMs[i],
                Watermark = watermark,
            };
            record.Features.Add(item.Features.AsSpan(i * _width, _width).ToArray());
            producer.Produce(_options.Topic, Encode(record.Entity, record, ScoredContentType));
            scored++;
            foreach (var (rule, feature) in _rules)
            {
                if (Matches(rule, feature, scores[i], item, i))
                {
                    string id = string.Create(CultureInfo.InvariantCulture, $"{rule.Name}/{item.Topic}/{partition}/{item.Offsets[i]}/{item.Indexes[i]}");
                    var alert = new Alert { Id = id, Rule = rule.Name, Event = record };
                    producer.Produce(_alerts.Topic, Encode(record.Entity, alert, AlertContentType));
                    alerts.Add((id, FlatJson(alert)));
                    _metrics.Alert(rule.Name);
                }
            }
        }
        // Everything the batch covers is done, scored or not selected.
        foreach (var offset in item.Watermark.Partitions)
        {
            if (offset.Topic == item.Topic && (!progress.TryGetValue(offset.Partition, out var done) || (offset.Offset, int.MaxValue).CompareTo(done) > 0))
            {
                progress[offset.Partition] = (offset.Offset, int.MaxValue);
            }
        }
        return (scored, replayed);
    }

    private bool Matches(AlertRule rule, int feature, float score, ScoredBatch item, int row) =>
        (rule.ScoreAbove is not { } above || score > above)
        && (feature < 0 || rule.FeatureAbove is not { } threshold || item.Raw[row * _width + feature] > threshold);

    private Message<string, byte[]> Encode(string key, IMessage message, byte[] protobufType) =>
        _options.Format == OutputFormat.Protobuf
            ? new Message<string, byte[]> { Key = key, Value = message.ToByteArray(), Headers = new Headers { { "content-type", protobufType } } }
            : new Message<string, byte[]> { Key = key, Value = Encoding.UTF8.GetBytes(JsonFormatter.Default.Format(message)), Headers = new Headers { { "content-type", JsonContentType } } };

    /// <summary>The alert as browsers and the dashboard read it: flat, numbers as numbers.</summary>
    internal static string FlatJson(Alert alert)
    {
        var e = alert.Event;
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", alert.Id);
            json.WriteString("rule", alert.Rule);
            json.WriteString("entity", e.Entity);
            json.WriteNumber("score", e.Score);
            json.WriteNumber("modelVersion", e.ModelVersion);
            json.WriteNumber("eventTimeMs", e.EventTimeMs);
            json.WriteString("source", string.Create(CultureInfo.InvariantCulture, $"{e.Source.Topic}/{e.Source.Partition}@{e.Source.Offset}"));
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private byte[] ProgressRecord(Dictionary<int, (long Offset, int Index)> progress)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("transactionalId", _transactionalId);
            json.WriteString("topic", _eventsTopic);
            json.WriteStartArray("partitions");
            foreach (var (partition, (offset, index)) in progress.OrderBy(p => p.Key))
            {
                json.WriteStartObject();
                json.WriteNumber("partition", partition);
                json.WriteNumber("offset", offset);
                json.WriteNumber("index", index);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    /// <summary>The last progress this transactional id committed (read_committed), newest first in windows from the end.</summary>
    private Dictionary<int, (long, int)> ReadProgress()
    {
        var config = _kafka.ConsumerConfig($"{_transactionalId}-progress-reader");
        config.EnableAutoCommit = false;
        config.IsolationLevel = IsolationLevel.ReadCommitted;
        using var consumer = new ConsumerBuilder<string, byte[]>(config).Build();
        var partition = new TopicPartition(_options.ProgressTopic, 0);
        var marks = consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(30));
        const long Window = 10_000;
        for (long end = marks.High; end > marks.Low; end -= Window)
        {
            long start = Math.Max(marks.Low, end - Window);
            consumer.Assign(new TopicPartitionOffset(partition, start));
            byte[]? last = null;
            var deadline = Stopwatch.StartNew();
            while (consumer.Position(partition) is var position && (position.Value < end || position == Offset.Unset) && deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                var message = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (message is { Message: not null } && message.Message.Key == _transactionalId && message.Offset.Value < end)
                {
                    last = message.Message.Value;
                }
            }
            if (last is not null)
            {
                return ParseProgress(last);
            }
        }
        return [];
    }

    private Dictionary<int, (long, int)> ParseProgress(byte[] record)
    {
        using var document = JsonDocument.Parse(record);
        var result = new Dictionary<int, (long, int)>();
        if (document.RootElement.GetProperty("topic").GetString() != _eventsTopic)
        {
            // Progress over another events topic says nothing about this one.
            return result;
        }
        foreach (var p in document.RootElement.GetProperty("partitions").EnumerateArray())
        {
            result[p.GetProperty("partition").GetInt32()] = (p.GetProperty("offset").GetInt64(), p.GetProperty("index").GetInt32());
        }
        return result;
    }

    private static string Describe(Dictionary<int, (long Offset, int Index)> progress) =>
        progress.Count == 0 ? "nothing (first start)" : string.Join(", ", progress.OrderBy(p => p.Key).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key}@{p.Value.Offset}")));

    public override void Dispose()
    {
        _room.Dispose();
        base.Dispose();
    }
}

using System.Buffers;
using System.Globalization;
using System.Text;
using System.Collections.Concurrent;
using Confluent.Kafka;
using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Engine.Pool;
using Inference.Engine.Sync;
using Inference.Models.Registry;
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
/// Exactly once, checkable without a broker that filters aborted transactions. Every start of the
/// producer is a new generation; every transaction attempt has the next sequence. Each score record
/// carries headers naming its producer and transaction (<c>inference.producer</c>,
/// <c>inference.transaction</c> = generation.sequence), and each transaction writes one
/// <see cref="ProgressRecord"/> naming itself, the transaction before it that committed (its base), and
/// how far the base and it have scored per source partition. A transaction counts as committed once a
/// later record names it as base; when the scorer goes idle it commits an empty transaction to name
/// the last one. A restart resumes after the newest record's base, never after a transaction whose
/// fate it cannot know, and a checkpoint covers only events whose transaction is named (so their
/// events are never applied again without being scored again). <c>inference scores verify</c>
/// applies the same rule to the topics.
/// </remarks>
internal sealed partial class StreamScorer : BackgroundService, IScoredBatchSink, ICheckpointedOutput
{
    // A transaction spans the applied batches waiting when it begins, within bounds: one commit per few
    // milliseconds under load, never one so large that its commit stalls ingest (backpressure) for long.
    private const int MaxBatchesPerTransaction = 64;
    private const int MaxRowsPerTransaction = 16_384;
    // Not a timeout: how long a failed transaction waits before it is tried again.
    private const int RetryDelayMs = 1_000;
    private const int BackpressureLogIntervalMs = 10_000;
    private static readonly byte[] ProducerHeader = "inference.producer\0"u8.ToArray();
    private static readonly byte[] TransactionHeader = "inference.transaction\0"u8.ToArray();
    private static readonly byte[] ContentTypeHeader = "content-type\0"u8.ToArray();
    private static readonly byte[] JsonContentType = "application/json"u8.ToArray();
    private static readonly byte[] ScoredContentType = "application/x-protobuf; messageType=inference.v1.ScoredEvent"u8.ToArray();
    private static readonly byte[] AlertContentType = "application/x-protobuf; messageType=inference.v1.Alert"u8.ToArray();

    private readonly KafkaConnection _kafka;
    private readonly ModelRegistry _registry;
    private readonly Training.FeatureLog? _log;
    private readonly OutputMetrics _metrics;
    private readonly AlertHub _hub;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<StreamScorer> _logger;
    private readonly TimeProvider _time;
    private readonly PartitionOwnership? _ownership;
    private readonly ScoreOutputOptions _options;
    private readonly AlertOptions _alerts;
    private readonly string _eventsTopic;
    private readonly string _transactionalId;
    private readonly byte[] _producerValue;
    private readonly (AlertRule Rule, int Feature)[] _rules;
    private readonly bool _raw;
    private readonly int _width;
    private readonly EmbeddingStore? _embeddings;
    private readonly ScoreRecordEncoder _encoder;
    private readonly ArrayBufferWriter<byte> _progressBuffer = new(4_096);
    // Applied batches waiting for their transaction (written by the device thread, read by the scorer's), and its wake-up.
    private readonly ConcurrentQueue<ScoredBatch> _queue = new();
    private readonly ManualResetEventSlim _arrived = new(false);
    private readonly SemaphoreSlim _room = new(0);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // The scorer thread's: progress as of the last committed transaction (_base), and the transaction names.
    private Dictionary<int, ScoredPosition> _committed = [];
    private TransactionName? _base;
    private long _generation;
    private long _sequence;
    private HashSet<int> _known = [];
    private long _ownershipVersion = -1;
    private long _unconfirmed;
    private RecordProducer? _records;
    private bool _filtersAborted;
    private float[] _scores = new float[4_096];
    private float[] _inputs = new float[4_096];
    private float[] _embeddingInputs = [];

    private long _enqueued;
    private long _produced;
    private long _confirmed;
    private long _lastBackpressureLog;

    public StreamScorer(KafkaConnection kafka, ModelRegistry registry, DeviceExecutor executor, OutputMetrics metrics, AlertHub hub, IHostApplicationLifetime lifetime,
        PartitionOwnership ownership, IOptions<ScoreOutputOptions> options, IOptions<AlertOptions> alerts, IOptions<SyncOptions> sync,
        IOptions<InferenceOptions> engine, TimeProvider time, ILogger<StreamScorer> logger, Training.FeatureLog? log = null)
    {
        _log = log;
        _time = time;
        _kafka = kafka;
        _registry = registry;
        _metrics = metrics;
        _hub = hub;
        _lifetime = lifetime;
        _logger = logger;
        _options = options.Value;
        _alerts = alerts.Value;
        _eventsTopic = kafka.Options.EventsTopic;
        _transactionalId = TransactionalIdOf(_options, kafka.Options.GroupId, engine.Value.Role, sync.Value.WorkerId);
        _producerValue = Encoding.UTF8.GetBytes(_transactionalId);
        // A pool worker owns some partitions and takes others over; a single node owns them all.
        _ownership = engine.Value.Role == EngineRole.Worker ? ownership : null;
        var names = executor.Plan.Definitions.Select(d => d.Name).ToList();
        _rules = [.. _alerts.Rules.Select(r => (r, r.Feature is null ? -1 : names.IndexOf(r.Feature)))];
        _raw = _rules.Any(r => r.Feature >= 0);
        Selector = new ScoreSelector(_options.SelectsAll ? null : _options.Select);
        _width = names.Count;
        _embeddings = executor.Embeddings;
        _encoder = new ScoreRecordEncoder(_options.Format, _eventsTopic);
    }

    /// <summary>
    /// The producer's transactional id: as configured, else the group id + "-scores", and in a pool's
    /// worker + "-" and the worker id (so that workers do not fence each other).
    /// </summary>
    internal static string TransactionalIdOf(ScoreOutputOptions options, string groupId, EngineRole role, string? workerId)
    {
        if (!string.IsNullOrWhiteSpace(options.TransactionalId))
        {
            return options.TransactionalId;
        }
        if (role == EngineRole.Worker)
        {
            return $"{groupId}-scores-{(string.IsNullOrWhiteSpace(workerId) ? Environment.MachineName : workerId)}";
        }
        return string.IsNullOrWhiteSpace(workerId) ? $"{groupId}-scores" : $"{groupId}-scores-{workerId}";
    }

    /// <summary>What the ingest thread uses to pick the events to score.</summary>
    public ScoreSelector Selector { get; }

    /// <summary>Applied batches with selected events handed over so far.</summary>
    public long Enqueued => Interlocked.Read(ref _enqueued);

    /// <summary>
    /// Of those, the ones whose transaction is known committed by the progress topic itself (a later
    /// committed transaction names it): what a checkpoint may cover.
    /// </summary>
    public long Committed => Interlocked.Read(ref _confirmed);

    /// <summary>Of those, the ones whose transaction committed (what backpressure counts).</summary>
    public long Produced => Interlocked.Read(ref _produced);

    /// <summary>The transactional id this scorer produces as.</summary>
    public string TransactionalId => _transactionalId;

    /// <summary>Completes once the producer is initialised and the committed progress read (before the first event is scored).</summary>
    public Task Ready => _ready.Task;

    /// <summary>On the executor, right after a batch with selected events is applied: reads their features from that state.</summary>
    public void Applied(MicroBatch batch, FeatureView table, Func<FeatureWatermark> watermark)
    {
        var selected = batch.Selected;
        int rows = selected.Count;
        var state = watermark();
        var item = new ScoredBatch(rows, table.Width, _raw, selected.EntityBytes.Length, _embeddings?.Width ?? 0) { Watermark = state, Topic = _eventsTopic };
        var keys = new ulong[rows];
        var entities = batch.Entities;
        var times = batch.Times;
        var chosen = selected.Rows;
        for (int i = 0; i < rows; i++)
        {
            int row = chosen[i];
            keys[i] = entities[row];
            item.EventTimesMs[i] = times[row];
        }
        selected.EntityBytes.CopyTo(item.EntityBytes);
        selected.EntityEnds.CopyTo(item.EntityEnds);
        selected.Partitions.CopyTo(item.Partitions);
        selected.Offsets.CopyTo(item.Offsets);
        selected.Indexes.CopyTo(item.Indexes);
        selected.Timestamps.CopyTo(item.TimestampsMs);
        // As Score reads: decayed and windowed values as of the newest event applied.
        if (_embeddings is { } store)
        {
            // A model over ids: the entity's own id and its LastOf ids, read with the features, as Score reads them.
            var lastKeys = new ulong[rows * table.LastKeys];
            table.Gather(keys, state.MaxEventTimeMs, item.Features, lastKeys: lastKeys);
            var ids = new ulong[rows * store.Count];
            for (int i = 0; i < rows; i++)
            {
                for (int t = 0; t < store.Count; t++)
                {
                    ids[i * store.Count + t] = store.Inputs[t].Source == IdSource.Entity ? keys[i] : 0;
                }
            }
            store.FillLastOf(ids, rows, lastKeys);
            store.Lookup(ids, rows, item.Embeddings);
            item.Ids = ids;
        }
        else
        {
            table.Gather(keys, state.MaxEventTimeMs, item.Features);
        }
        if (_raw)
        {
            table.Gather(keys, state.MaxEventTimeMs, item.Raw, transform: false);
        }
        Interlocked.Increment(ref _enqueued);
        _queue.Enqueue(item);
        _arrived.Set();
    }

    /// <summary>On the ingest thread: waits while too many applied batches wait for their transaction (Kafka not keeping up).</summary>
    public void WaitForRoom(CancellationToken cancellation)
    {
        if (Enqueued - Produced < _options.MaxPendingBatches)
        {
            return;
        }
        long started = _time.GetTimestamp();
        while (Enqueued - Produced >= _options.MaxPendingBatches && !cancellation.IsCancellationRequested)
        {
            _room.Wait(100, CancellationToken.None);
        }
        double waited = _time.GetElapsedTime(started).TotalSeconds;
        _metrics.Backpressure(waited);
        long now = _time.GetTimestamp();
        long last = Interlocked.Read(ref _lastBackpressureLog);
        if (waited >= 0.1 && (last == 0 || _time.GetElapsedTime(last, now).TotalMilliseconds >= BackpressureLogIntervalMs))
        {
            Interlocked.Exchange(ref _lastBackpressureLog, now);
            OutputsLog.Backpressure(_logger, waited * 1e3, _options.MaxPendingBatches, _options.Topic);
        }
    }

    /// <summary>
    /// Before partitions leave this worker: waits until every batch applied so far is in a transaction a
    /// later committed one names (the scorer names the last within <see cref="ScoreOutputOptions.IdleCommitMs"/>),
    /// so that their next owner reads how far they were scored. Bounded by the progress timeout; a
    /// scorer that has stopped is not waited for, nor is the wait cut short by a stop of the engine.
    /// </summary>
    public void WaitSettled()
    {
        long enqueued = Enqueued;
        long started = _time.GetTimestamp();
        // Not cut short by a stop: the scorer stops after ingest, and a graceful stop must hand over as a rebalance does.
        while (Committed < enqueued && ExecuteTask is { IsCompleted: false } && _time.GetElapsedTime(started).TotalMilliseconds < _options.ProgressReadTimeoutMs)
        {
            _room.Wait(10, CancellationToken.None);
        }
    }

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // On the embedded broker: the outputs' topics (the progress topic needs one partition only).
        _kafka.EnsureEmbeddedTopic(_options.Topic);
        _kafka.EnsureEmbeddedTopic(_options.ProgressTopic, partitions: 1);
        _kafka.EnsureEmbeddedTopic(_alerts.Topic);
        _kafka.EnsureEmbeddedTopic(_alerts.DeadLetterTopic);
        return base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken stopping)
    {
        var config = _kafka.ProducerConfig();
        config.TransactionalId = _transactionalId;
        config.Acks = Acks.All;
        // Records go out through librdkafka directly (RecordProducer): none carries a .NET handler.
        config.EnableDeliveryReports = false;
        config.Set("compression.type", _options.Compression);
        foreach (var (key, value) in _options.Producer)
        {
            config.Set(key, value);
        }
        // A transaction here lasts milliseconds. The broker aborts one left open by a crashed producer at
        // this timeout at the latest (Kafka's default is 60 s; a restart may wait that long for the fence).
        config.TransactionTimeoutMs = _options.TransactionTimeoutMs;
        using var producer = new ProducerBuilder<Null, Null>(config).Build();
        _records = new RecordProducer(producer) { QueueFull = _metrics.QueueFull };
        try
        {
            var timeout = TimeSpan.FromMilliseconds(_options.ProgressReadTimeoutMs);
            producer.InitTransactions(timeout);
            _filtersAborted = FiltersAbortedTransactions(producer, timeout);
            Resume(ReadProgress());
        }
        catch (Exception error) when (error is KafkaException or TimeoutException)
        {
            OutputsLog.CannotStart(_logger, _options.ProgressTopic, error.Message);
            _ready.TrySetException(error);
            _lifetime.StopApplication();
            return;
        }
        OutputsLog.Started(_logger, _options.SelectsAll ? "all" : $"'{_options.Select}'-selected", _eventsTopic, _options.Topic, _options.Format, _transactionalId,
            _generation, Describe(_committed, _base), _filtersAborted ? "filters aborted transactions" : "does not filter aborted transactions");
        _ready.TrySetResult();
        var items = new List<ScoredBatch>();
        while (true)
        {
            items.Clear();
            if (_queue.IsEmpty)
            {
                // Idle with a transaction that no record names yet: name it (an empty transaction) when
                // nothing comes within IdleCommitMs, so that checkpoints and restarts can count on it.
                bool arrived;
                try
                {
                    _arrived.Reset();
                    arrived = !_queue.IsEmpty || _arrived.Wait(_unconfirmed > 0 ? _options.IdleCommitMs : Timeout.Infinite, stopping);
                }
                catch (OperationCanceledException)
                {
                    // Stopping: what was applied before the stop is still committed below.
                    if (_queue.IsEmpty)
                    {
                        break;
                    }
                    arrived = true;
                }
                if (!arrived)
                {
                    if (!Commit(producer, items))
                    {
                        return;
                    }
                    continue;
                }
            }
            int rows = 0;
            while (items.Count < MaxBatchesPerTransaction && rows < MaxRowsPerTransaction && _queue.TryDequeue(out var item))
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
        // A graceful stop names the last transaction, so nothing it wrote is scored again.
        items.Clear();
        if (_unconfirmed > 0)
        {
            Commit(producer, items);
        }
    }

    private static string Describe(Dictionary<int, ScoredPosition> progress, TransactionName? based) =>
        progress.Count == 0
            ? "nothing (first start)"
            : string.Join(", ", progress.OrderBy(p => p.Key).Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.Key}@{p.Value.Offset}")))
                + (based is { } b ? $" (transaction {b})" : "");

    public override void Dispose()
    {
        _room.Dispose();
        _arrived.Dispose();
        base.Dispose();
    }
}

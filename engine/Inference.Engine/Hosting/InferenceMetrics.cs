using System.Diagnostics.Metrics;

namespace Inference.Engine.Hosting;

/// <summary>
/// The engine's instruments (meter "Inference"), plus running totals the demo and tests read in-process.
/// </summary>
public sealed class InferenceMetrics
{
    public const string MeterName = "Inference";

    private readonly Meter _meter;
    private readonly TotalCounter _events;
    private readonly TotalCounter _malformed;
    private readonly TotalCounter _dropped;
    private readonly TotalCounter _dataLoss;
    private readonly TotalCounter _batches;
    private readonly TotalCounter _rowsScored;
    private readonly TotalCounter _labels;
    private readonly TotalCounter _malformedLabels;
    private readonly TotalCounter _publishes;
    private readonly TotalCounter _syncs;
    private readonly TotalCounter _late;
    private readonly TotalCounter _evicted;
    private readonly TotalCounter _pointInTimeInexact;
    private readonly Histogram<double> _applySeconds;
    private readonly Histogram<double> _scoreSeconds;
    private readonly Histogram<long> _batchRows;
    private readonly TotalCounter _shed;
    private readonly TotalCounter _abandoned;
    private long _lag;
    private double _onlineLogLoss = double.NaN;

    public InferenceMetrics(IMeterFactory meterFactory)
    {
        var meter = _meter = meterFactory.Create(MeterName);
        TotalCounter Counter(string name, string unit, string description) => new(meter.CreateCounter<long>(name, unit, description));
        _events = Counter("inference.ingest.events", "{event}", "Events applied to the feature state.");
        _malformed = Counter("inference.ingest.malformed", "{event}", "Events set aside as malformed, by reason.");
        _dropped = Counter("inference.features.dropped", "{event}", "Events of entities the full state table could not take.");
        _dataLoss = Counter("inference.ingest.data_loss", "{reset}", "Offset-out-of-range resets: data the broker no longer had.");
        _batches = Counter("inference.ingest.batches", "{batch}", "Micro-batches applied.");
        _rowsScored = Counter("inference.serving.rows", "{row}", "Rows scored.");
        _labels = Counter("inference.training.labels", "{label}", "Labels trained on.");
        _malformedLabels = Counter("inference.training.malformed_labels", "{label}", "Labels set aside as malformed.");
        _publishes = Counter("inference.training.publishes", "{publish}", "Model versions published to serving.");
        _syncs = Counter("inference.sync.rounds", "{round}", "Push/pull rounds with the parameter server.");
        _late = Counter("inference.features.late", "{event}", "Events older than a windowed feature's allowed lateness, by feature; not applied to it.");
        _evicted = Counter("inference.features.evicted", "{entity}", "Entities evicted from the feature table, by reason (ttl, capacity).");
        _pointInTimeInexact = Counter("inference.training.point_in_time_inexact", "{label}", "Labels joined with running aggregates that already include events after the label.");
        _applySeconds = meter.CreateHistogram<double>("inference.features.apply.duration", "s", "Time to apply one micro-batch on the accelerator.");
        _scoreSeconds = meter.CreateHistogram<double>("inference.serving.duration", "s", "Server-side time of one Score call.");
        _batchRows = meter.CreateHistogram<long>("inference.serving.batch.rows", "{row}", "Rows of one dynamic serving batch (one gather, one forward pass).");
        _shed = Counter("inference.serving.shed", "{request}", "Score requests refused with RESOURCE_EXHAUSTED because the queue was full.");
        _abandoned = Counter("inference.serving.abandoned", "{request}", "Score requests dropped before launch, by reason (cancelled, deadline).");
        meter.CreateObservableGauge("inference.ingest.lag", () => Volatile.Read(ref _lag), "{event}", "Events behind the end of the assigned partitions.");
        meter.CreateObservableGauge("inference.training.online_log_loss", () => Volatile.Read(ref _onlineLogLoss), null, "Progressive log loss of labels before training on them.");
    }

    public long EventsApplied => _events.Total;

    public long MalformedEvents => _malformed.Total;

    public long DroppedEvents => _dropped.Total;

    public long DataLossResets => _dataLoss.Total;

    public long BatchesApplied => _batches.Total;

    public long RowsScored => _rowsScored.Total;

    public long LabelsTrained => _labels.Total;

    public long MalformedLabels => _malformedLabels.Total;

    public long SyncRounds => _syncs.Total;

    public long ConsumerLag => Volatile.Read(ref _lag);

    public long LateEvents => _late.Total;

    public long EvictedEntities => _evicted.Total;

    /// <summary>Exponentially weighted progressive log loss (NaN until the first label).</summary>
    public double OnlineLogLoss => Volatile.Read(ref _onlineLogLoss);

    internal void BatchApplied(int events, double seconds)
    {
        _events.Add(events);
        _batches.Add(1);
        _applySeconds.Record(seconds);
    }

    internal void Malformed(string reason) => _malformed.Add(1, "reason", reason);

    internal void Dropped(int events) => _dropped.Add(events);

    internal void ObserveEntities(Func<int> entities) =>
        _meter.CreateObservableGauge("inference.features.entities", entities, "{entity}", "Entities held in the feature table.");

    internal void Late(string feature, long events) => _late.Add(events, "feature", feature);

    internal void Evicted(int entities, string reason) => _evicted.Add(entities, "reason", reason);

    internal void PointInTimeInexact(int labels)
    {
        if (labels > 0)
        {
            _pointInTimeInexact.Add(labels);
        }
    }

    internal void DataLoss() => _dataLoss.Add(1);

    internal void Lag(long lag) => Volatile.Write(ref _lag, lag);

    public long ShedRequests => _shed.Total;

    public long AbandonedRequests => _abandoned.Total;

    /// <summary>Dynamic serving batches launched.</summary>
    public long ServingBatches => Interlocked.Read(ref _servingBatches);

    private long _servingBatches;

    internal void ServingBatch(int requests, int rows)
    {
        Interlocked.Increment(ref _servingBatches);
        _batchRows.Record(rows);
    }

    internal void Shed() => _shed.Add(1);

    internal void Abandoned(string reason) => _abandoned.Add(1, "reason", reason);

    internal void ObserveServingQueue(Func<int> queued) =>
        _meter.CreateObservableGauge("inference.serving.queue", queued, "{request}", "Score requests waiting for the device.");

    internal void Scored(int rows, double seconds)
    {
        _rowsScored.Add(rows);
        _scoreSeconds.Record(seconds);
    }

    internal void Trained(int labels, double onlineLogLoss)
    {
        _labels.Add(labels);
        Volatile.Write(ref _onlineLogLoss, onlineLogLoss);
    }

    internal void MalformedLabel() => _malformedLabels.Add(1);

    internal void Published() => _publishes.Add(1);

    internal void Synced() => _syncs.Add(1);

    /// <summary>A counter instrument and its running total in this process.</summary>
    private sealed class TotalCounter(Counter<long> counter)
    {
        private long _total;

        public long Total => Interlocked.Read(ref _total);

        public void Add(long value)
        {
            Interlocked.Add(ref _total, value);
            counter.Add(value);
        }

        public void Add(long value, string tag, string tagValue)
        {
            Interlocked.Add(ref _total, value);
            // Build the tag only when someone listens.
            if (counter.Enabled)
            {
                counter.Add(value, new KeyValuePair<string, object?>(tag, tagValue));
            }
        }
    }
}

using System.Diagnostics.Metrics;

namespace Inference.Engine.Hosting;

/// <summary>
/// The engine's instruments (meter "Inference"), plus running totals the demo and tests read in-process.
/// </summary>
public sealed class InferenceMetrics
{
    public const string MeterName = "Inference";

    private readonly Counter<long> _events;
    private readonly Counter<long> _malformed;
    private readonly Counter<long> _dropped;
    private readonly Counter<long> _dataLoss;
    private readonly Counter<long> _batches;
    private readonly Histogram<double> _applySeconds;
    private readonly Counter<long> _rowsScored;
    private readonly Histogram<double> _scoreSeconds;
    private readonly Counter<long> _labels;
    private readonly Counter<long> _publishes;
    private readonly Counter<long> _syncs;
    private readonly Counter<long> _late;
    private readonly Counter<long> _evicted;
    private readonly Counter<long> _pointInTimeInexact;
    private readonly Meter _meter;
    private long _lateTotal;
    private long _evictedTotal;

    private long _eventsTotal;
    private long _malformedTotal;
    private long _droppedTotal;
    private long _dataLossTotal;
    private long _batchesTotal;
    private long _rowsScoredTotal;
    private long _labelsTotal;
    private long _malformedLabelsTotal;
    private long _syncsTotal;
    private long _lag;
    private double _onlineLogLoss = double.NaN;

    public InferenceMetrics(IMeterFactory meterFactory)
    {
        var meter = _meter = meterFactory.Create(MeterName);
        _events = meter.CreateCounter<long>("inference.ingest.events", "{event}", "Events applied to the feature state.");
        _malformed = meter.CreateCounter<long>("inference.ingest.malformed", "{event}", "Events set aside as malformed, by reason.");
        _dropped = meter.CreateCounter<long>("inference.features.dropped", "{event}", "Events of entities the full state table could not take.");
        _dataLoss = meter.CreateCounter<long>("inference.ingest.data_loss", "{reset}", "Offset-out-of-range resets: data the broker no longer had.");
        _batches = meter.CreateCounter<long>("inference.ingest.batches", "{batch}", "Micro-batches applied.");
        _applySeconds = meter.CreateHistogram<double>("inference.features.apply.duration", "s", "Time to apply one micro-batch on the accelerator.");
        _rowsScored = meter.CreateCounter<long>("inference.serving.rows", "{row}", "Rows scored.");
        _scoreSeconds = meter.CreateHistogram<double>("inference.serving.duration", "s", "Server-side time of one Score call.");
        _labels = meter.CreateCounter<long>("inference.training.labels", "{label}", "Labels trained on.");
        _publishes = meter.CreateCounter<long>("inference.training.publishes", "{publish}", "Model versions published to serving.");
        _syncs = meter.CreateCounter<long>("inference.sync.rounds", "{round}", "Push/pull rounds with the parameter server.");
        _late = meter.CreateCounter<long>("inference.features.late", "{event}", "Events older than a windowed feature's allowed lateness, by feature; not applied to it.");
        _evicted = meter.CreateCounter<long>("inference.features.evicted", "{entity}", "Entities evicted from the feature table, by reason (ttl, capacity).");
        _pointInTimeInexact = meter.CreateCounter<long>("inference.training.point_in_time_inexact", "{label}", "Labels joined with running aggregates that already include events after the label.");
        meter.CreateObservableGauge("inference.ingest.lag", () => Volatile.Read(ref _lag), "{event}", "Events behind the end of the assigned partitions.");
        meter.CreateObservableGauge("inference.training.online_log_loss", () => Volatile.Read(ref _onlineLogLoss), null, "Progressive log loss of labels before training on them.");
    }

    public long EventsApplied => Interlocked.Read(ref _eventsTotal);

    public long MalformedEvents => Interlocked.Read(ref _malformedTotal);

    public long DroppedEvents => Interlocked.Read(ref _droppedTotal);

    public long DataLossResets => Interlocked.Read(ref _dataLossTotal);

    public long BatchesApplied => Interlocked.Read(ref _batchesTotal);

    public long RowsScored => Interlocked.Read(ref _rowsScoredTotal);

    public long LabelsTrained => Interlocked.Read(ref _labelsTotal);

    public long MalformedLabels => Interlocked.Read(ref _malformedLabelsTotal);

    public long SyncRounds => Interlocked.Read(ref _syncsTotal);

    public long ConsumerLag => Volatile.Read(ref _lag);

    public long LateEvents => Interlocked.Read(ref _lateTotal);

    public long EvictedEntities => Interlocked.Read(ref _evictedTotal);

    /// <summary>Exponentially weighted progressive log loss (NaN until the first label).</summary>
    public double OnlineLogLoss => Volatile.Read(ref _onlineLogLoss);

    internal void BatchApplied(int events, double seconds)
    {
        Interlocked.Add(ref _eventsTotal, events);
        Interlocked.Increment(ref _batchesTotal);
        _events.Add(events);
        _batches.Add(1);
        _applySeconds.Record(seconds);
    }

    internal void Malformed(string reason)
    {
        Interlocked.Increment(ref _malformedTotal);
        if (_malformed.Enabled)
        {
            _malformed.Add(1, new KeyValuePair<string, object?>("reason", reason));
        }
    }

    internal void Dropped(int events)
    {
        Interlocked.Add(ref _droppedTotal, events);
        _dropped.Add(events);
    }

    internal void ObserveEntities(Func<int> entities) =>
        _meter.CreateObservableGauge("inference.features.entities", entities, "{entity}", "Entities held in the feature table.");

    internal void Late(string feature, long events)
    {
        Interlocked.Add(ref _lateTotal, events);
        if (_late.Enabled)
        {
            _late.Add(events, new KeyValuePair<string, object?>("feature", feature));
        }
    }

    internal void Evicted(int entities, string reason)
    {
        Interlocked.Add(ref _evictedTotal, entities);
        if (_evicted.Enabled)
        {
            _evicted.Add(entities, new KeyValuePair<string, object?>("reason", reason));
        }
    }

    internal void PointInTimeInexact(int labels)
    {
        if (labels > 0)
        {
            _pointInTimeInexact.Add(labels);
        }
    }

    internal void DataLoss()
    {
        Interlocked.Increment(ref _dataLossTotal);
        _dataLoss.Add(1);
    }

    internal void Lag(long lag) => Volatile.Write(ref _lag, lag);

    internal void Scored(int rows, double seconds)
    {
        Interlocked.Add(ref _rowsScoredTotal, rows);
        _rowsScored.Add(rows);
        _scoreSeconds.Record(seconds);
    }

    internal void Trained(int labels, double onlineLogLoss)
    {
        Interlocked.Add(ref _labelsTotal, labels);
        _labels.Add(labels);
        Volatile.Write(ref _onlineLogLoss, onlineLogLoss);
    }

    internal void MalformedLabel() => Interlocked.Increment(ref _malformedLabelsTotal);

    internal void Published() => _publishes.Add(1);

    internal void Synced()
    {
        Interlocked.Increment(ref _syncsTotal);
        _syncs.Add(1);
    }
}

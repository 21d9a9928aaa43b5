using System.Diagnostics.Metrics;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Features;

/// <summary>The features stage's instruments: applies on the device executor, evictions, lateness.</summary>
internal sealed class FeatureMetrics
{
    private readonly Meter _meter;
    private readonly TotalCounter _events;
    private readonly TotalCounter _batches;
    private readonly TotalCounter _dropped;
    private readonly TotalCounter _late;
    private readonly TotalCounter _evicted;
    private readonly Histogram<double> _applySeconds;
    private readonly Histogram<int> _batchEvents;
    private long _applyNanoseconds;

    public FeatureMetrics(IMeterFactory meterFactory)
    {
        var meter = _meter = meterFactory.Create(EngineMeter.Name);
        _events = new(meter, "inference.ingest.events", "{event}", "Events applied to the feature state.");
        _batches = new(meter, "inference.ingest.batches", "{batch}", "Micro-batches applied.");
        _dropped = new(meter, "inference.features.dropped", "{event}", "Events of entities the full state table could not take.");
        _late = new(meter, "inference.features.late", "{event}", "Events older than a windowed feature's allowed lateness, by feature; not applied to it.");
        _evicted = new(meter, "inference.features.evicted", "{entity}", "Entities evicted from the feature table, by reason (ttl, capacity).");
        _applySeconds = meter.CreateHistogram<double>("inference.features.apply.duration", "s", "Time to apply one micro-batch on the accelerator.", advice: EngineMeter.Seconds);
        _batchEvents = meter.CreateHistogram<int>("inference.features.apply.batch_size", "{event}", "Events per applied micro-batch.",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 8, 64, 256, 1_024, 4_096, 8_192, 16_384, 65_536] });
    }

    public long EventsApplied => _events.Total;

    public long BatchesApplied => _batches.Total;

    public long DroppedEvents => _dropped.Total;

    public long LateEvents => _late.Total;

    public long EvictedEntities => _evicted.Total;

    /// <summary>Time spent applying batches so far (what ingest is compared with: how much it adds on top).</summary>
    public double ApplySeconds => Interlocked.Read(ref _applyNanoseconds) / 1e9;

    internal void BatchApplied(int events, double seconds)
    {
        _events.Add(events);
        _batches.Add(1);
        _applySeconds.Record(seconds);
        _batchEvents.Record(events);
        Interlocked.Add(ref _applyNanoseconds, (long)(seconds * 1e9));
    }

    internal void Dropped(int events) => _dropped.Add(events);

    internal void Late(string feature, long events) => _late.Add(events, "feature", feature);

    internal void Evicted(int entities, string reason) => _evicted.Add(entities, "reason", reason);

    /// <summary>A model over ids: its embedding tables' rows and forgotten ids, by id input.</summary>
    internal void ObserveEmbeddings(EmbeddingStore store)
    {
        _meter.CreateObservableGauge("inference.embeddings.rows", store.RowsHeld, "{row}", "Ids holding an embedding row of their own, by id input (the shared default row not counted).");
        _meter.CreateObservableCounter("inference.embeddings.forgotten", store.Forgotten, "{id}", "Ids the embedding tables forgot (TTL, or room for new ids), by id input.");
    }

    internal void ObserveEntities(Func<int> entities) =>
        _meter.CreateObservableGauge("inference.features.entities", entities, "{entity}", "Entities held in the feature table.");
}

using System.Diagnostics.Metrics;
using Inference.Engine.Features;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Serving;

/// <summary>The serving stage's instruments: rows scored, latency, dynamic batches, shed and abandoned calls.</summary>
internal sealed class ServingMetrics : IGatherMetrics
{
    private readonly Meter _meter;
    private readonly TotalCounter _rows;
    private readonly TotalCounter _batches;
    private readonly TotalCounter _shed;
    private readonly TotalCounter _abandoned;
    private readonly TotalCounter _watermarkWaits;
    private readonly TotalCounter _forwarded;
    private readonly Histogram<double> _seconds;
    private readonly Histogram<long> _batchRows;

    public ServingMetrics(IMeterFactory meterFactory, TimeProvider time)
    {
        Recent = new LatencyWindow(time);
        var meter = _meter = meterFactory.Create(EngineMeter.Name);
        _rows = new(meter, "inference.serving.rows", "{row}", "Rows scored.");
        _batches = new(meter, "inference.serving.batches", "{batch}", "Dynamic batches: one gather and one forward pass each.");
        _shed = new(meter, "inference.serving.shed", "{request}", "Score requests refused with RESOURCE_EXHAUSTED because the queue was full.");
        _watermarkWaits = new(meter, "inference.serving.watermark_waits", "{request}", "Score requests that waited for the features to reach their min_watermark (read-your-writes).");
        _forwarded = new(meter, "inference.serving.forwarded", "{row}", "Score rows forwarded to the pool worker that owns their entity.");
        _abandoned = new(meter, "inference.serving.abandoned", "{request}", "Score requests dropped before launch, by reason (cancelled, deadline).");
        _seconds = meter.CreateHistogram<double>("inference.serving.duration", "s", "Server-side time of one Score call.", advice: EngineMeter.Seconds);
        _batchRows = meter.CreateHistogram<long>("inference.serving.batch.rows", "{row}", "Rows of one dynamic serving batch.");
    }

    public long RowsScored => _rows.Total;

    public long Batches => _batches.Total;

    public long ShedRequests => _shed.Total;

    public long AbandonedRequests => _abandoned.Total;

    internal void Scored(int rows, double seconds)
    {
        _rows.Add(rows);
        _seconds.Record(seconds);
        Recent.Add(seconds);
    }

    /// <summary>The latest Score durations (the dashboard's percentiles).</summary>
    internal LatencyWindow Recent { get; }

    public void Batch(int rows)
    {
        _batches.Add(1);
        _batchRows.Record(rows);
    }

    internal void Shed() => _shed.Add(1);

    /// <summary>Score rows sent on to the worker that owns them.</summary>
    public long ForwardedRows => _forwarded.Total;

    internal void Forwarded(int rows) => _forwarded.Add(rows);

    internal void WaitedForWatermark() => _watermarkWaits.Add(1);

    public void Abandoned(string reason) => _abandoned.Add(1, "reason", reason);

    public void ObserveQueue(Func<int> queued) =>
        _meter.CreateObservableGauge("inference.serving.queue", queued, "{request}", "Score requests waiting for the device.");
}

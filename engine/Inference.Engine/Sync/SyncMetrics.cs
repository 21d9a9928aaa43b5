using System.Diagnostics.Metrics;
using Inference.Engine.Ingest;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Sync;

/// <summary>The sync stage's instruments.</summary>
public sealed class SyncMetrics
{
    private readonly TotalCounter _rounds;
    private readonly TotalCounter _failures;

    public SyncMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(IngestMetrics.MeterName);
        _rounds = new(meter, "inference.sync.rounds", "{round}", "Push/pull rounds with the parameter server.");
        _failures = new(meter, "inference.sync.failures", "{round}", "Push/pull rounds that failed (retried next interval).");
    }

    public long SyncRounds => _rounds.Total;

    public long Failures => _failures.Total;

    internal void Synced() => _rounds.Add(1);

    internal void Failed() => _failures.Add(1);
}

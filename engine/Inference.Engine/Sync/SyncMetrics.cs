using System.Diagnostics.Metrics;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Sync;

/// <summary>The sync stage's instruments.</summary>
internal sealed class SyncMetrics
{
    private readonly TotalCounter _rounds;
    private readonly TotalCounter _failures;
    private readonly TotalCounter _refused;
    private readonly TotalCounter _duplicates;

    public SyncMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(EngineMeter.Name);
        _rounds = new(meter, "inference.sync.rounds", "{round}", "Push/pull rounds with the parameter server.");
        _failures = new(meter, "inference.sync.failures", "{round}", "Push/pull rounds that failed (retried next interval).");
        _refused = new(meter, "inference.sync.refused", "{push}", "Pushes the parameter server refused, by reason (not_finite, norm, stale, shape).");
        _duplicates = new(meter, "inference.sync.duplicates", "{push}", "Pushes the parameter server had already applied (retries after a lost response): not applied again.");
    }

    public long SyncRounds => _rounds.Total;

    public long Failures => _failures.Total;

    public long RefusedPushes => _refused.Total;

    public long DuplicatePushes => _duplicates.Total;

    internal void Refused(string reason) => _refused.Add(1, "reason", reason);

    internal void Duplicate() => _duplicates.Add(1);

    internal void Synced() => _rounds.Add(1);

    internal void Failed() => _failures.Add(1);
}

using System.Diagnostics.Metrics;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Training;

/// <summary>The model lifecycle's instruments: candidates, rollbacks, shadow scoring.</summary>
internal sealed class LifecycleMetrics
{
    private readonly TotalCounter _candidates;
    private readonly TotalCounter _rollbacks;
    private readonly TotalCounter _shadow;
    private readonly long[] _outcomes = new long[Outcomes.Length];

    private static readonly string[] Outcomes = ["loaded", "promoted", "rolled_back", "withdrawn"];

    public LifecycleMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(EngineMeter.Name);
        _candidates = new(meter, "inference.model.candidates", "{candidate}",
            "Candidates by what became of them: loaded, promoted (validated better, or by command), rolled_back (validated worse: withdrawn by the guard), withdrawn (by command).");
        _rollbacks = new(meter, "inference.model.rollbacks", "{rollback}", "Times an earlier version was served again (the guard, or by command).");
        _shadow = new(meter, "inference.model.shadow_rows", "{row}", "Rows a shadow candidate scored beside the serving model, by outcome: scored, or dropped (the shadow scorer was behind).");
    }

    /// <summary>Candidates so far that ended as <paramref name="outcome"/> (loaded, promoted, rolled_back, withdrawn).</summary>
    public long Candidates(string outcome) => Interlocked.Read(ref _outcomes[Array.IndexOf(Outcomes, outcome)]);

    public long RollBacks => _rollbacks.Total;

    public long ShadowRows => _shadow.Total;

    internal void Candidate(string outcome)
    {
        Interlocked.Increment(ref _outcomes[Array.IndexOf(Outcomes, outcome)]);
        _candidates.Add(1, "outcome", outcome);
    }

    internal void RolledBack() => _rollbacks.Add(1);

    internal void Shadow(int rows, string outcome) => _shadow.Add(rows, "outcome", outcome);
}

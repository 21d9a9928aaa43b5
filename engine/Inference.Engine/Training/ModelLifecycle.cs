using System.Collections.Concurrent;
using System.Globalization;
using Inference.Models.Parameters;
using Inference.Models.Registry;
using Inference.Models.Training;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Training;

/// <summary>
/// The model lifecycle on top of the registry: a candidate (a file, or a second learner) in shadow or canary, its automatic
/// promotion or withdrawal, the serving model's automatic rollback to its baseline, and commands (promote, roll
/// back) run on the trainer's thread, which owns the learner. Every label is scored by the serving model, the
/// candidate and the baseline before any learning; over windows of <c>Inference:Training:GuardLabels</c> labels
/// their mean log losses are compared. Also keeps each version's cumulative progressive figures.
/// </summary>
internal sealed partial class ModelLifecycle(ModelRegistry registry, TrainingOptions options, LifecycleMetrics metrics, ILogger<ModelLifecycle> logger) : IDisposable
{
    private const int MaxFigures = ModelRegistry.HistoryLimit;

    private readonly ConcurrentQueue<(Func<OnlineLearner?, ModelVersion> Command, TaskCompletionSource<ModelVersion> Done)> _commands = new();
    private readonly Lock _gate = new();
    private readonly Dictionary<long, VersionFigures> _figures = [];
    private bool _attached;
    private PairedWindow _candidateWindow;
    private long _windowCandidate;
    private PairedWindow _servingWindow;
    private ModelLease _baseline;
    private long _baselineVersion;

    public ModelRegistry Registry => registry;

    /// <summary>The version the serving model is guarded against (0: none yet).</summary>
    public long BaselineVersion => Volatile.Read(ref _baselineVersion);

    /// <summary>Registers a candidate; the guard starts a fresh window for it.</summary>
    public CandidateInfo Load(ParameterSet parameters, CandidateMode mode, double canaryShare, bool autoPromote, string note)
    {
        var info = registry.SetCandidate(parameters, mode, canaryShare, autoPromote, note);
        metrics.Candidate("loaded");
        LifecycleLog.CandidateLoaded(logger, info.Version.ToString(), mode.ToString(), canaryShare);
        return info;
    }

    /// <summary>Withdraws the candidate by command; null when there was none.</summary>
    public CandidateInfo? Withdraw()
    {
        var info = registry.WithdrawCandidate();
        if (info is not null)
        {
            metrics.Candidate("withdrawn");
            LifecycleLog.CandidateWithdrawn(logger, info.Version.ToString(), "by command");
        }
        return info;
    }

    /// <summary>Promotes the candidate (on the trainer's thread when one runs); faults when there is none.</summary>
    public Task<ModelVersion> PromoteAsync() => Run(learner => PromoteNow(learner, "by command")
        ?? throw new InvalidOperationException("There is no candidate to promote: register one first (inference model load FILE --to ADDRESS)."));

    /// <summary>Serves <paramref name="version"/> again (0: the guard's baseline), as a new version made from it.</summary>
    public Task<ModelVersion> RollBackAsync(long version) => Run(learner =>
    {
        long target = version != 0 ? version : BaselineVersion;
        if (target == 0 || registry.Parameters(target) is not { } parameters)
        {
            throw new InvalidOperationException(version == 0
                ? "There is no baseline to roll back to yet; name a version whose weights the registry kept (ListVersions)."
                : string.Create(CultureInfo.InvariantCulture, $"The registry does not keep the weights of version {version}; versions it keeps are listed with their weights by ListVersions."));
        }
        return RollBackNow(learner, target, parameters, "by command");
    });

    /// <summary>The trainer runs from now on: commands wait for its thread.</summary>
    public void Attach()
    {
        lock (_gate)
        {
            _attached = true;
        }
    }

    /// <summary>The trainer stopped: queued commands run here, and the ones to come run at once.</summary>
    public void Detach()
    {
        lock (_gate)
        {
            _attached = false;
        }
        Drain(null);
    }

    /// <summary>On the trainer's thread: runs the commands queued for it.</summary>
    public void Drain(OnlineLearner? learner)
    {
        while (_commands.TryDequeue(out var command))
        {
            try
            {
                command.Done.TrySetResult(command.Command(learner));
            }
            catch (InvalidOperationException error)
            {
                command.Done.TrySetException(error);
            }
        }
    }

    /// <summary>
    /// On the trainer's thread, after a mini-batch was scored by the serving model (losses per label in
    /// <paramref name="servingLosses"/>), the candidate and the baseline (NaN-free spans of the same length, or empty
    /// when there was none): counts the windows and acts on what they decide.
    /// </summary>
    public void Observe(OnlineLearner learner, long servingVersion, long candidacy, ReadOnlySpan<double> servingLosses,
        ReadOnlySpan<double> candidateLosses, ReadOnlySpan<double> baselineLosses)
    {
        if (_baselineVersion == 0)
        {
            Rebase(servingVersion);
        }
        if (candidateLosses.Length > 0)
        {
            if (_windowCandidate != candidacy)
            {
                (_windowCandidate, _candidateWindow) = (candidacy, default);
            }
            _candidateWindow.Add(servingLosses.Length, Sum(servingLosses), Sum(candidateLosses));
            var info = registry.Candidate;
            if (info?.Candidacy == candidacy)
            {
                var decision = _candidateWindow.ForCandidate(options.GuardLabels, options.PromoteMargin, options.RollbackMargin, info.AutoPromote);
                string why = string.Create(CultureInfo.InvariantCulture,
                    $"its log loss {_candidateWindow.OtherMeanLoss:F4} against the serving model's {_candidateWindow.MeanLoss:F4} over {_candidateWindow.Labels} labels");
                switch (decision)
                {
                    case GuardDecision.Withdraw when registry.WithdrawCandidate() is not null:
                        metrics.Candidate("rolled_back");
                        LifecycleLog.CandidateWithdrawn(logger, info.Version.ToString(), why);
                        break;
                    case GuardDecision.Promote:
                        PromoteNow(learner, why);
                        break;
                }
                if (decision != GuardDecision.None)
                {
                    _candidateWindow = default;
                }
            }
        }
        if (baselineLosses.Length > 0 && options.AutoRollback)
        {
            _servingWindow.Add(servingLosses.Length, Sum(servingLosses), Sum(baselineLosses));
            switch (_servingWindow.ForServing(options.GuardLabels, options.RollbackMargin))
            {
                case GuardDecision.RollBack when registry.Parameters(_baselineVersion) is { } parameters:
                    RollBackNow(learner, _baselineVersion, parameters, string.Create(CultureInfo.InvariantCulture,
                        $"the serving versions' log loss {_servingWindow.MeanLoss:F4} against v{_baselineVersion}'s {_servingWindow.OtherMeanLoss:F4} over {_servingWindow.Labels} labels"));
                    break;
                case GuardDecision.Advance:
                    Rebase(registry.Version);
                    break;
            }
        }
    }

    /// <summary>A lease on the baseline's weights for scoring labels, or false when the serving version is the baseline.</summary>
    public bool TryBaseline(long servingVersion, out ModelSnapshot baseline)
    {
        baseline = _baseline.Snapshot;
        return options.AutoRollback && baseline is not null && _baselineVersion != servingVersion;
    }

    /// <summary>Adds labels scored by <paramref name="versions"/> (per label, with their log losses) to each version's cumulative figures.</summary>
    public void Count(ReadOnlySpan<float> scores, ReadOnlySpan<float> labels, ReadOnlySpan<double> losses, ReadOnlySpan<long> versions)
    {
        lock (_gate)
        {
            for (int i = 0; i < scores.Length; i++)
            {
                var figures = _figures.GetValueOrDefault(versions[i]) ?? new VersionFigures(versions[i], 0, 0, 0, 0);
                _figures[versions[i]] = figures with
                {
                    Labels = figures.Labels + 1,
                    LossSum = figures.LossSum + losses[i],
                    ScoreSum = figures.ScoreSum + scores[i],
                    LabelSum = figures.LabelSum + labels[i],
                };
            }
            if (_figures.Count > MaxFigures)
            {
                foreach (long old in _figures.Keys.Order().Take(_figures.Count - MaxFigures).ToList())
                {
                    _figures.Remove(old);
                }
            }
        }
    }

    /// <summary>The cumulative figures of <paramref name="version"/>, or null when it scored no label.</summary>
    public VersionFigures? Figures(long version)
    {
        lock (_gate)
        {
            return _figures.GetValueOrDefault(version);
        }
    }

    /// <summary>Every version's figures (for checkpoints).</summary>
    public IReadOnlyList<VersionFigures> AllFigures()
    {
        lock (_gate)
        {
            return [.. _figures.Values.OrderBy(f => f.Version)];
        }
    }

    /// <summary>Takes up figures a checkpoint recorded.</summary>
    public void Restore(IReadOnlyList<VersionFigures> figures)
    {
        lock (_gate)
        {
            foreach (var f in figures)
            {
                _figures[f.Version] = f;
            }
        }
    }

    private Task<ModelVersion> Run(Func<OnlineLearner?, ModelVersion> command)
    {
        lock (_gate)
        {
            if (_attached)
            {
                var done = new TaskCompletionSource<ModelVersion>(TaskCreationOptions.RunContinuationsAsynchronously);
                _commands.Enqueue((command, done));
                return done.Task;
            }
        }
        try
        {
            return Task.FromResult(command(null));
        }
        catch (InvalidOperationException error)
        {
            return Task.FromException<ModelVersion>(error);
        }
    }

    private ModelVersion? PromoteNow(OnlineLearner? learner, string why)
    {
        var candidate = registry.Candidate;
        if (registry.Promote($"promoted from candidate v{candidate?.Version.Version} ({candidate?.Version.Note}): {why}") is not { } promoted)
        {
            return null;
        }
        if (_candidateLearner is not null && candidate?.Candidacy == _learnerCandidacy)
        {
            // A learner: the trainer goes on as it did (its learning rate, optimizer and state), from the weights promoted.
            _candidateLearner.Import(promoted.Parameters);
            learner?.TakeOver(_candidateLearner);
            _candidateLearner.Dispose();
            _candidateLearner = null;
        }
        else
        {
            Adopt(learner, promoted.Parameters);
        }
        metrics.Candidate("promoted");
        LifecycleLog.Promoted(logger, promoted.Promoted.ToString(), why);
        Rebase(promoted.Promoted.Version);
        return promoted.Promoted;
    }

    private ModelVersion RollBackNow(OnlineLearner? learner, long target, ParameterSet parameters, string why)
    {
        long from = registry.Version;
        long version = registry.Publish(parameters, ModelOrigin.Rollback, string.Create(CultureInfo.InvariantCulture, $"v{target} again, rolled back from v{from}: {why}"));
        Adopt(learner, parameters);
        metrics.RolledBack();
        LifecycleLog.RolledBack(logger, from, target, why);
        Rebase(target);
        return registry.Find(version)!;
    }

    /// <summary>The learner goes on from <paramref name="parameters"/>, its standardisation taken as a full horizon of rows.</summary>
    private static void Adopt(OnlineLearner? learner, ParameterSet parameters)
    {
        if (learner is not null)
        {
            learner.Import(parameters);
            learner.AdoptStandardisation(OnlineLearner.StatisticsHorizonRows);
        }
    }

    /// <summary>Guards the serving model against <paramref name="version"/> from now on (its weights kept while it is the baseline).</summary>
    private void Rebase(long version)
    {
        _servingWindow = default;
        if (version == _baselineVersion && _baseline.Snapshot is not null)
        {
            return;
        }
        if (registry.Freeze(version) is { } lease)
        {
            registry.Pin(version);
            _baseline.Dispose();
            _baseline = lease;
            Volatile.Write(ref _baselineVersion, version);
        }
    }

    private static double Sum(ReadOnlySpan<double> values)
    {
        double sum = 0;
        foreach (double value in values)
        {
            sum += value;
        }
        return sum;
    }

    public void Dispose()
    {
        _baseline.Dispose();
        _candidateLearner?.Dispose();
    }
}

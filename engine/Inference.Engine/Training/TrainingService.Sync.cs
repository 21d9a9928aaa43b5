using Inference.Engine.Sync;
using Inference.Models.Parameters;
using Inference.Models.Training;

namespace Inference.Engine.Training;

/// <summary>The trainer's side of the parameter server: joining it, pushing what was learned, adopting the merge.</summary>
internal sealed partial class TrainingService
{
    /// <summary>Starts from the shard's parameters, or seeds an empty shard with ours.</summary>
    private void TryJoinParameterServer(OnlineLearner learner)
    {
        try
        {
            var (version, parameters, moments) = _parameters.Pull();
            if (parameters is null)
            {
                _parameters.Initialize(learner.Export(), OwnRows());
                (version, parameters, moments) = _parameters.Pull();
            }
            else if (_fileWins && _isWorker)
            {
                // The file wins over the pool's weights: the first push carries the difference, and the pool takes it up.
                _fileWins = false;
                _base = parameters;
                _baseVersion = version;
                _learnedSinceSync = true;
                return;
            }
            Adopt(learner, version, parameters!, moments);
            AdoptRows();
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            _syncMetrics.Failed();
            SyncLog.SyncFailed(_logger, error.Message);
        }
    }

    /// <summary>Pushes what this worker learned since its base version, then adopts the merged parameters.</summary>
    private void Sync(OnlineLearner learner)
    {
        try
        {
            if (_base is null)
            {
                TryJoinParameterServer(learner);
                return;
            }
            if (!ServerContinues(learner))
            {
                return;
            }
            if (_unacked is { } pending)
            {
                // The last push's answer was lost: the same push again (the same sequence), applied at most once.
                PushOnce(pending);
                _base = _base.Plus(pending.Delta);
            }
            if (_learnedSinceSync && learner.Export() is { } learned && learned.IsFinite())
            {
                _learnedSinceSync = false;
                var rows = _syncsRows ? Blocks(_features.TakeEmbeddingChanges()) : null;
                PushOnce((learned.Minus(_base), _baseVersion, ++_sequence, learner.Moments, rows));
            }
            var (version, merged, moments) = _parameters.Pull();
            Adopt(learner, version, merged!, moments);
            AdoptRows();
            _syncMetrics.Synced();
            SyncLog.Synced(_logger, version);
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            _syncMetrics.Failed();
            SyncLog.SyncFailed(_logger, error.Message);
        }
    }

    /// <summary>
    /// Looks at the parameter server before pushing: a server that restarted empty is seeded again with
    /// this worker's parameters (what it learned included) and false is returned (this round is done);
    /// one that restarted and was seeded by another worker (its version is below this worker's base)
    /// takes this worker's delta against its current version. Nothing stays stuck on a restart.
    /// </summary>
    private bool ServerContinues(OnlineLearner learner)
    {
        var (version, parameters, _) = _parameters.Pull();
        if (parameters is null)
        {
            SyncLog.ServerRestarted(_logger, "empty; seeding it with this worker's parameters");
            _unacked = null;
            _learnedSinceSync = false;
            _pushedMoments = null;
            _parameters.Initialize(learner.Export(), OwnRows());
            var (seeded, merged, moments) = _parameters.Pull();
            Adopt(learner, seeded, merged!, moments);
            AdoptRows();
            _syncMetrics.Synced();
            return false;
        }
        if (version < _baseVersion)
        {
            SyncLog.ServerRestarted(_logger, $"at version {version}, below this worker's base {_baseVersion}; pushing against it");
            _baseVersion = version;
            if (_unacked is { } pending)
            {
                _unacked = pending with { BaseVersion = version };
            }
        }
        return true;
    }

    /// <summary>Pushes a delta; until the shard answers, it stays pending and is sent again at the next sync.</summary>
    private void PushOnce((ParameterSet Delta, long BaseVersion, ulong Sequence, InputMoments Moments, IReadOnlyList<RowBlock>? Rows) push)
    {
        _unacked = push;
        try
        {
            _parameters.Push(push.Delta, push.BaseVersion, push.Sequence, push.Moments, push.Rows);
            // What the shard now holds as this worker's statistics.
            _pushedMoments = push.Moments;
        }
        catch (StalePushException error)
        {
            // Too far behind: what was learned on so old a base is dropped; the pull that follows catches up.
            _syncMetrics.Refused("stale");
            SyncLog.StaleDropped(_logger, error.Message);
        }
        _unacked = null;
    }

    /// <summary>A pool's model over ids: every row's offset from its initial values, to seed a server that holds none.</summary>
    private IReadOnlyList<RowBlock>? OwnRows() => _syncsRows ? Blocks(_features.EmbeddingOffsets()) : null;

    /// <summary>A pool's model over ids: takes up the rows the pool changed since the last pull (every worker's changes summed).</summary>
    private void AdoptRows()
    {
        if (_syncsRows)
        {
            _features.AdoptEmbeddingRows([.. _parameters.PullRows().Select(b => (b.Input, b.Dimension, b.Keys, b.Values))]);
        }
    }

    private static List<RowBlock> Blocks(IReadOnlyList<(string Input, int Dimension, ulong[] Keys, float[] Values)> rows) =>
        [.. rows.Select(r => new RowBlock(r.Input, r.Dimension, r.Keys, r.Values))];

    private void Adopt(OnlineLearner learner, long version, ParameterSet parameters, InputMoments? merged)
    {
        learner.Import(parameters);
        if (merged is not null && merged.Sums.Length == learner.Spec.Inputs)
        {
            // The other workers' statistics: the merged ones less this worker's as the shard holds them.
            learner.SetOtherMoments(_pushedMoments is null ? merged : merged.Minus(_pushedMoments));
        }
        _base = parameters;
        _baseVersion = version;
        if (!parameters.ApproximatelyEquals(_registry.CurrentParameters()))
        {
            _registry.Publish(parameters, Models.Registry.ModelOrigin.Pool);
            _metrics.Published();
        }
    }
}

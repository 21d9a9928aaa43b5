using Inference.Engine.Pipeline;
using Inference.Engine.Sync;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Checkpoints;

/// <summary>
/// Makes the parameter server durable (role Ps with <c>Inference:Checkpoints:Directory</c>): restores its
/// shard from the newest whole checkpoint when the host starts, before the server answers anyone, then
/// checkpoints it every <see cref="CheckpointOptions.IntervalMs"/> when its version moved, and once more on
/// a graceful stop. A restart loses at most one interval of pushes; workers whose base is ahead of the
/// restored version rebase on it (see the trainer's sync).
/// </summary>
internal sealed class ShardCheckpointer(ParameterShard shard, IOptions<CheckpointOptions> options, CheckpointMetrics metrics, TimeProvider time, ILogger<ShardCheckpointer> logger) : BackgroundService
{
    private readonly CheckpointOptions _options = options.Value;
    private long _written = -1;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        if (_options.Enabled)
        {
            var newest = ShardCheckpoints.ReadNewest(_options.Directory!, (path, problem) => SyncLog.ShardCheckpointSetAside(logger, path, problem));
            if (newest is var (path, state))
            {
                shard.Restore(state);
                _written = state.Version;
                SyncLog.ShardRestored(logger, state.Version, state.Applied.Count, path);
            }
        }
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_options.Enabled)
        {
            return;
        }
        long next = Deadline.After(time, _options.IntervalMs);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Deadline.RemainingMs(time, next)), time, stoppingToken);
                next = Deadline.After(time, _options.IntervalMs);
                Take();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception error) when (error is IOException or UnauthorizedAccessException)
            {
                metrics.Failure();
                CheckpointLog.Failed(logger, error);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_options.Enabled)
        {
            Take();
        }
    }

    /// <summary>Writes a checkpoint when the shard's version moved since the last one.</summary>
    private void Take()
    {
        var state = shard.State;
        if (state.Parameters is null || state.Version == _written)
        {
            return;
        }
        string path = ShardCheckpoints.Write(_options.Directory!, state, time);
        ShardCheckpoints.Prune(_options.Directory!, _options.Keep);
        _written = state.Version;
        SyncLog.ShardCheckpointed(logger, state.Version, path);
    }
}

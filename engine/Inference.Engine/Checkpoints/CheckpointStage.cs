using Inference.Engine.Ingest;
using Inference.Engine.Pipeline;
using Inference.Engine.Training;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Engine.Checkpoints;

/// <summary>
/// Registers checkpoints: options, coordinator and metrics in every role; what restores, writes and
/// checkpoints the shard where the builder composes them. When each starts and stops is
/// <c>Hosting/EngineLifecycle</c>'s.
/// </summary>
internal static class CheckpointStage
{
    // poolWorker: in a pool, this worker's name: its checkpoints go to its own subdirectory of the pool's, and partitions are handed over.
    public static void AddOptions(IServiceCollection services, IConfiguration configuration, string? poolWorker)
    {
        var options = services.AddStageOptions(configuration, CheckpointOptions.Section, new CheckpointOptionsValidator());
        if (poolWorker is not null)
        {
            options.PostConfigure(o =>
            {
                if (o.Enabled && o.PoolDirectory is null)
                {
                    o.PoolDirectory = o.Directory;
                    o.Directory = Path.Combine(o.Directory!, poolWorker);
                }
            });
        }
        services.AddSingleton<CheckpointMetrics>();
    }

    /// <summary>The engine's own checkpoints: the coordinator the stages register with, the restorer and the writer.</summary>
    public static void AddEngineCheckpoints(IServiceCollection services)
    {
        services.AddSingleton<CheckpointCoordinator>();
        services.AddSingleton<IConsumerCheckpoints>(sp => sp.GetRequiredService<CheckpointCoordinator>());
        services.AddSingleton<ITrainerCheckpoints>(sp => sp.GetRequiredService<CheckpointCoordinator>());
        services.AddSingleton<CheckpointRestorer>();
        services.AddSingleton<CheckpointWriter>();
    }

    /// <summary>
    /// The parameter server alone (role Ps) checkpoints its shard; in role All the shard is seeded again
    /// from the trainer, whose state the engine's own checkpoints hold.
    /// </summary>
    public static void AddShardCheckpoints(IServiceCollection services) => services.AddSingleton<ShardCheckpointer>();
}

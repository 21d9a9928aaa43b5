using Inference.Engine.Ingest;
using Inference.Engine.Pipeline;
using Inference.Engine.Training;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Engine.Checkpoints;

/// <summary>
/// Registers checkpoints: options, coordinator and metrics; the restorer right after the device executor
/// (restore before ingest and training start) and the writer last (its final checkpoint is taken first on stop).
/// </summary>
internal static class CheckpointStage
{
    // poolWorker: in a pool, this worker's name: its checkpoints go to its own subdirectory of the pool's, and partitions are handed over.
    public static void AddRestore(IServiceCollection services, IConfiguration configuration, bool runs, string? poolWorker)
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
        services.AddSingleton<CheckpointCoordinator>();
        services.AddSingleton<IConsumerCheckpoints>(sp => sp.GetRequiredService<CheckpointCoordinator>());
        services.AddSingleton<ITrainerCheckpoints>(sp => sp.GetRequiredService<CheckpointCoordinator>());
        services.AddSingleton<CheckpointMetrics>();
        if (runs)
        {
            services.AddHostedService<CheckpointRestorer>();
        }
    }

    /// <summary>
    /// The parameter server alone (role Ps) checkpoints its shard; in role All the shard is seeded again
    /// from the trainer, whose state the engine's own checkpoints hold.
    /// </summary>
    public static void AddShard(IServiceCollection services, bool checkpointsShard)
    {
        if (checkpointsShard)
        {
            services.AddHostedService<ShardCheckpointer>();
        }
    }

    public static void AddWriter(IServiceCollection services, bool runs)
    {
        if (runs)
        {
            services.AddSingleton<CheckpointWriter>();
            services.AddHostedService(sp => sp.GetRequiredService<CheckpointWriter>());
        }
    }
}

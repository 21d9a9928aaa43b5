using Inference.Engine.Pipeline;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Engine.Checkpoints;

/// <summary>
/// Registers checkpoints: options, coordinator and metrics; the restorer right after the device executor
/// (restore before ingest and training start) and the writer last (its final checkpoint is taken first on stop).
/// </summary>
internal static class CheckpointStage
{
    public static void AddRestore(IServiceCollection services, IConfiguration configuration, bool runs)
    {
        services.AddStageOptions(configuration, CheckpointOptions.Section, new CheckpointOptionsValidator());
        services.AddSingleton<CheckpointCoordinator>();
        services.AddSingleton<CheckpointMetrics>();
        if (runs)
        {
            services.AddHostedService<CheckpointRestorer>();
        }
    }

    public static void AddWriter(IServiceCollection services, bool runs)
    {
        if (runs)
        {
            services.AddHostedService<CheckpointWriter>();
        }
    }
}

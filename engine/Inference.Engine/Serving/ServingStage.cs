using Inference.Engine.Pipeline;
using Inference.Engine.Training;
using Inference.Models.Registry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Serving;

/// <summary>Registers the serving stage: its options, validator and metrics, and the batcher that scores each dynamic batch.</summary>
internal static class ServingStage
{
    public static void Add(IServiceCollection services, IConfiguration configuration, bool runs, bool pool)
    {
        services.AddStageOptions(configuration, ServingOptions.Section, new ServingOptionsValidator());
        services.AddSingleton<ServingMetrics>();
        if (runs)
        {
            services.AddSingleton(sp => new ScoreBatcher(sp.GetRequiredService<ModelRegistry>(),
                sp.GetRequiredService<IOptions<ModelOptions>>().Value.RequestFeatures, sp.GetRequiredService<ServingMetrics>()));
        }
        if (runs && pool)
        {
            // A worker of a pool announces what it owns and routes Score rows to their owners.
            services.AddSingleton<PoolMembership>();
            services.AddHostedService(sp => sp.GetRequiredService<PoolMembership>());
            services.AddSingleton<ScoreRouter>();
        }
    }
}

using Inference.Engine.Features;
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
    public static void AddOptions(IServiceCollection services, IConfiguration configuration)
    {
        services.AddStageOptions(configuration, ServingOptions.Section, new ServingOptionsValidator());
        services.AddSingleton<ServingMetrics>();
        // The device executor's serving queue is bounded and reported by this stage.
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<ServingOptions>>().Value.Gathers);
        services.AddSingleton<IGatherMetrics>(sp => sp.GetRequiredService<ServingMetrics>());
    }

    /// <summary>Score's dynamic batches and the writer of events sent by gRPC.</summary>
    public static void AddScoring(IServiceCollection services)
    {
        services.AddSingleton(sp => new ScoreBatcher(sp.GetRequiredService<ModelRegistry>(),
            sp.GetRequiredService<IOptions<ModelOptions>>().Value.RequestFeatures, sp.GetRequiredService<ServingMetrics>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetService<Training.FeatureLog>(), sp.GetRequiredService<ShadowScorer>()));
        services.AddSingleton(sp => new ShadowScorer(sp.GetRequiredService<LifecycleMetrics>(), sp.GetService<Training.FeatureLog>(), sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<EventWriter>();
    }
}

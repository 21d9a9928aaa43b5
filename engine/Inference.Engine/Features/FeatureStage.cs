using Inference.Engine.Ingest;
using Inference.Engine.Pipeline;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Features;

/// <summary>Registers the features stage: its options (declarations resolved), validator and metrics, and the device executor that owns the accelerator.</summary>
internal static class FeatureStage
{
    public static void AddOptions(IServiceCollection services, IConfiguration configuration)
    {
        services.AddStageOptions(configuration, FeatureOptions.Section, new FeatureOptionsValidator()).PostConfigure(FeatureDeclarations.Resolve);
        services.AddSingleton<FeatureMetrics>();
    }

    /// <summary>The device executor that owns the accelerator, the feature table and (a model over ids) the embedding tables, and the store the other stages read through.</summary>
    public static void AddDevice(IServiceCollection services)
    {
        services.AddSingleton(sp => DeviceContext.Create(sp.GetRequiredService<IOptions<FeatureOptions>>().Value.Accelerator));
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<FeatureOptions>>().Value;
            var embeddings = sp.GetService<EmbeddingStore>();
            var metrics = sp.GetRequiredService<FeatureMetrics>();
            if (embeddings is not null)
            {
                metrics.ObserveEmbeddings(embeddings);
            }
            return new DeviceExecutor(sp.GetRequiredService<DeviceContext>(), new FeaturePlan(options.Definitions, embeddings?.LastOfFields), options,
                sp.GetRequiredService<GatherLimits>(), metrics, sp.GetRequiredService<IGatherMetrics>(),
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<DeviceExecutor>>(), sp.GetRequiredService<IOwnedPartitions>(), embeddings);
        });
        services.AddSingleton<FeatureStore>();
    }

    /// <summary>The events consumer that feeds the device executor.</summary>
    public static void AddIngestor(IServiceCollection services) => services.AddSingleton<EventIngestor>();
}

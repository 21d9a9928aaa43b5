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
    public static void Add(IServiceCollection services, IConfiguration configuration, bool runs)
    {
        services.AddStageOptions(configuration, FeatureOptions.Section, new FeatureOptionsValidator()).PostConfigure(FeatureDeclarations.Resolve);
        services.AddSingleton<FeatureMetrics>();
        if (!runs)
        {
            return;
        }
        services.AddSingleton(sp => DeviceContext.Create(sp.GetRequiredService<IOptions<FeatureOptions>>().Value.Accelerator));
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<FeatureOptions>>().Value;
            return new DeviceExecutor(sp.GetRequiredService<DeviceContext>(), new FeaturePlan(options.Definitions), options,
                sp.GetRequiredService<GatherLimits>(), sp.GetRequiredService<FeatureMetrics>(), sp.GetRequiredService<IGatherMetrics>(),
                sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<DeviceExecutor>>(), sp.GetRequiredService<IOwnedPartitions>());
        });
        // Registered before the stages that send it work: it starts before them and stops after them.
        services.AddHostedService(sp => sp.GetRequiredService<DeviceExecutor>());
        services.AddSingleton<FeatureStore>();
    }

    /// <summary>The events consumer that feeds the device executor (registered after stream scoring, which stops after it).</summary>
    public static void AddIngestor(IServiceCollection services, bool runs)
    {
        if (runs)
        {
            services.AddHostedService<EventIngestor>();
        }
    }
}

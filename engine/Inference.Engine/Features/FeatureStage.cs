using Inference.Engine.Pipeline;
using Inference.Engine.Serving;
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
        services.AddSingleton<PartitionOwnership>();
        if (!runs)
        {
            return;
        }
        services.AddSingleton(sp => DeviceContext.Create(sp.GetRequiredService<IOptions<FeatureOptions>>().Value.Accelerator));
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<FeatureOptions>>().Value;
            return new DeviceExecutor(sp.GetRequiredService<DeviceContext>(), new FeaturePlan(options.Definitions), options,
                sp.GetRequiredService<IOptions<ServingOptions>>().Value, sp.GetRequiredService<FeatureMetrics>(), sp.GetRequiredService<ServingMetrics>(),
                sp.GetRequiredService<ILogger<DeviceExecutor>>(), sp.GetRequiredService<PartitionOwnership>());
        });
        // Registered before the stages that send it work: it starts before them and stops after them.
        services.AddHostedService(sp => sp.GetRequiredService<DeviceExecutor>());
        services.AddSingleton<FeatureStore>();
    }
}

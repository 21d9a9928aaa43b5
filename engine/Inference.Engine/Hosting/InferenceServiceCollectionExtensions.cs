using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Engine.Serving;
using Inference.Engine.Sync;
using Inference.Engine.Training;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Models;
using Inference.Models.Registry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Hosting;

public static class InferenceServiceCollectionExtensions
{
    /// <summary>
    /// Registers the engine's stages for the configured role, bound from the <c>Inference</c>
    /// section and validated at start (a bad value fails start with a message naming its key).
    /// </summary>
    public static IServiceCollection AddInference(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<InferenceOptions>()
            .Bind(configuration.GetSection(InferenceOptions.Section))
            .PostConfigure(options => FeatureDeclarations.Resolve(options.Features))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<InferenceOptions>, InferenceOptionsValidator>();
        services.AddMetrics();
        services.AddSingleton<InferenceMetrics>();
        services.AddGrpc(grpc => grpc.EnableDetailedErrors = false);
        // grpc.health.v1.Health: SERVING while the host runs (readiness that waits for restore and catch-up comes with checkpoints).
        services.AddGrpcHealthChecks();

        var role = configuration.GetSection(InferenceOptions.Section).GetValue(nameof(InferenceOptions.Role), EngineRole.All);
        if (role is EngineRole.All or EngineRole.Ps)
        {
            services.AddSingleton<ParameterShard>();
        }
        if (role == EngineRole.Ps)
        {
            return services;
        }

        services.AddSingleton<KafkaConnection>();
        services.AddSingleton(sp => DeviceContext.Create(Options(sp).Features.Accelerator));
        services.AddSingleton(sp => new DeviceExecutor(sp.GetRequiredService<DeviceContext>(), new FeaturePlan(Options(sp).Features.Definitions), Options(sp).Features,
            Options(sp).Serving, sp.GetRequiredService<InferenceMetrics>(), sp.GetRequiredService<ILogger<DeviceExecutor>>()));
        // The executor starts before the stages that send it work and stops after them.
        services.AddHostedService(sp => sp.GetRequiredService<DeviceExecutor>());
        services.AddSingleton<FeatureStore>();
        services.AddSingleton(sp => new ScoreBatcher(sp.GetRequiredService<ModelRegistry>(), Options(sp).Model.RequestFeatures, sp.GetRequiredService<InferenceMetrics>()));
        services.AddSingleton(sp =>
        {
            var options = Options(sp);
            TorchRuntime.EnsureLoaded(options.Model.IntraOpThreads);
            int inputs = sp.GetRequiredService<FeatureStore>().FeatureWidth + options.Model.RequestFeatures;
            return new ModelRegistry(new ModelSpec(options.Model.Kind, inputs, options.Model.Hidden, options.Model.Seed));
        });
        services.AddSingleton<IParameterClient>(sp =>
        {
            var options = Options(sp);
            return role == EngineRole.All
                ? new LocalParameterClient(sp.GetRequiredService<ParameterShard>())
                : new GrpcParameterClient(options.Sync.ParameterServer!, options.Sync.WorkerId ?? $"{Environment.MachineName}-{Environment.ProcessId}");
        });
        services.AddHostedService<EventIngestor>();
        if (configuration.GetSection(InferenceOptions.Section).GetValue("Training:Enabled", true))
        {
            services.AddHostedService<TrainingService>();
        }
        return services;
    }

    private static InferenceOptions Options(IServiceProvider services) => services.GetRequiredService<IOptions<InferenceOptions>>().Value;
}

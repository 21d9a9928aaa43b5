using Inference.Engine.Features;
using Inference.Engine.Pipeline;
using Inference.Models.Registry;
using Inference.Models;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Training;

/// <summary>Registers the training stage: model and training options with their validators and metrics, the model registry, and the trainer.</summary>
internal static class TrainingStage
{
    public static void Add(IServiceCollection services, IConfiguration configuration, bool runs)
    {
        services.AddStageOptions(configuration, ModelOptions.Section, new ModelOptionsValidator());
        services.AddStageOptions(configuration, TrainingOptions.Section, new TrainingOptionsValidator());
        services.AddSingleton<TrainingMetrics>();
        if (!runs)
        {
            return;
        }
        services.AddSingleton(sp =>
        {
            var model = sp.GetRequiredService<IOptions<ModelOptions>>().Value;
            TorchRuntime.EnsureLoaded(model.IntraOpThreads);
            int inputs = sp.GetRequiredService<FeatureStore>().FeatureWidth + model.RequestFeatures;
            var registry = new ModelRegistry(new ModelSpec(model.Kind, inputs, model.Hidden, model.Seed));
            sp.GetRequiredService<TrainingMetrics>().ObserveModelVersion(() => registry.Version);
            return registry;
        });
        if (configuration.GetSection(TrainingOptions.Section).GetValue(nameof(TrainingOptions.Enabled), true))
        {
            services.AddHostedService<TrainingService>();
        }
    }
}

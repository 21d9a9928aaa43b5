using Inference.Engine.Features;
using Inference.Engine.Pipeline;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Embeddings;
using Inference.Kernels.Features;
using Inference.Models.Registry;
using Inference.Models;
using Inference.Models.Exchange;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Training;

/// <summary>Registers the training stage: model and training options with their validators and metrics, the model registry, and the trainer.</summary>
internal static class TrainingStage
{
    public static void AddOptions(IServiceCollection services, IConfiguration configuration, EngineRole role)
    {
        var sparse = configuration.GetSection(TrainingOptions.Section).GetValue(nameof(TrainingOptions.EmbeddingOptimizer), SparseOptimizerKind.Adagrad);
        services.AddStageOptions(configuration, ModelOptions.Section, new ModelOptionsValidator(role, sparse));
        services.AddStageOptions(configuration, TrainingOptions.Section, new TrainingOptionsValidator());
        services.AddSingleton<TrainingMetrics>();
    }

    /// <summary>
    /// The model registry, from <c>Inference:Model</c> (a new model, or the one of <c>Inference:Model:File</c>); it
    /// loads (with libtorch) as the host starts, not on the first Score, so a model file that does not fit the
    /// engine stops the start there, naming the key.
    /// </summary>
    public static void AddModel(IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(ModelOptions.Section);
        bool kindSet = section.GetSection(nameof(ModelOptions.Kind)).Exists();
        bool hiddenSet = section.GetSection(nameof(ModelOptions.Hidden)).Exists();
        services.AddSingleton(sp =>
        {
            var model = sp.GetRequiredService<IOptions<ModelOptions>>().Value;
            TorchRuntime.EnsureLoaded(model.IntraOpThreads);
            int width = sp.GetRequiredService<FeatureStore>().FeatureWidth;
            int inputs = width + model.RequestFeatures;
            var time = sp.GetRequiredService<TimeProvider>();
            return string.IsNullOrEmpty(model.File)
                ? new ModelRegistry(new ModelSpec(model.Kind, inputs, model.Hidden, model.Seed, model.Ids.Count == 0 ? null : [.. model.Ids.Select(i => i.Dimension)]), time: time)
                : Imported(model, width, kindSet, hiddenSet, time);
        });
        services.AddSingleton<ModelStartup>();
        services.AddSingleton<LifecycleMetrics>();
        services.AddSingleton(sp => new ModelLifecycle(sp.GetRequiredService<ModelRegistry>(), sp.GetRequiredService<IOptions<TrainingOptions>>().Value,
            sp.GetRequiredService<LifecycleMetrics>(), sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<ModelLifecycle>>()));
    }

    /// <summary>
    /// A model over ids: its embedding tables, one per id input, for the device executor to own (they live on
    /// its accelerator and are touched only by work it runs). Each table takes the largest call: a serving batch
    /// or a training mini-batch.
    /// </summary>
    public static void AddEmbeddings(IServiceCollection services, IConfiguration configuration)
    {
        if (!configuration.GetSection(ModelOptions.Section).GetSection(nameof(ModelOptions.Ids)).GetChildren().Any())
        {
            return;
        }
        services.AddSingleton(sp =>
        {
            var model = sp.GetRequiredService<IOptions<ModelOptions>>().Value;
            var training = sp.GetRequiredService<IOptions<TrainingOptions>>().Value;
            var serving = sp.GetRequiredService<GatherLimits>();
            int maxRows = Math.Max(Math.Max(serving.MaxBatchRows, serving.MaxRowsPerRequest), training.BatchSize);
            for (int i = 0; i < model.Ids.Count; i++)
            {
                if (model.Ids[i].Capacity <= maxRows)
                {
                    throw Invalid($"{ModelOptions.Section}:Ids:{i}:Capacity must be above the largest call's rows ({maxRows}: a serving batch or a training mini-batch) (got '{model.Ids[i].Capacity}').");
                }
            }
            var numeric = new FeaturePlan(sp.GetRequiredService<IOptions<FeatureOptions>>().Value.Definitions).NumericFields;
            for (int i = 0; i < model.Ids.Count; i++)
            {
                if (model.Ids[i].Source == IdSource.LastOf && numeric.Contains(model.Ids[i].Field!))
                {
                    throw Invalid($"{ModelOptions.Section}:Ids:{i}:Field names '{model.Ids[i].Field}', a numeric field a feature aggregates; a LastOf id reads a field of ids (hashed as text) (got '{model.Ids[i].Field}').");
                }
            }
            // A pool worker records the rows it touches: they sync through the parameter server.
            bool pool = sp.GetRequiredService<IOptions<InferenceOptions>>().Value.Role == EngineRole.Worker;
            return new EmbeddingStore(sp.GetRequiredService<DeviceContext>(), model.Ids, training.Sparse, training.EmbeddingInitScale, maxRows, pool);
        });
    }

    /// <summary>The online trainer and its feature log, unless <c>Inference:Training:Enabled</c> is false.</summary>
    public static void AddTrainer(IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(TrainingOptions.Section);
        if (section.GetValue(nameof(TrainingOptions.Enabled), true))
        {
            services.AddSingleton<TrainingService>();
            services.AddSingleton(sp =>
            {
                var validation = new ProgressiveValidation(sp.GetRequiredService<IOptions<TrainingOptions>>().Value.ValidationWindow);
                sp.GetRequiredService<TrainingMetrics>().ObserveValidation(validation, sp.GetRequiredService<TimeProvider>());
                return validation;
            });
            if (section.GetValue(nameof(TrainingOptions.FeatureLogCapacity), TrainingOptions.DefaultFeatureLogCapacity) > 0)
            {
                // What Score serves under a request id, for the labels that name it.
                services.AddSingleton(sp =>
                {
                    var model = sp.GetRequiredService<IOptions<ModelOptions>>().Value;
                    var training = sp.GetRequiredService<IOptions<TrainingOptions>>().Value;
                    return new FeatureLog(sp.GetRequiredService<FeatureStore>().FeatureWidth + model.RequestFeatures, model.Ids.Count,
                        training.FeatureLogCapacity, training.MaxLabelDelayMs, sp.GetRequiredService<TimeProvider>());
                });
            }
        }
    }

    /// <summary>The registry starting from <c>Inference:Model:File</c>; anything that does not fit the engine stops the start naming the key.</summary>
    private static ModelRegistry Imported(ModelOptions model, int featureWidth, bool kindSet, bool hiddenSet, TimeProvider time)
    {
        string file = model.File!;
        ModelFileContents contents;
        try
        {
            contents = ModelFile.Read(file);
        }
        catch (Exception error) when (error is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw Invalid($"{ModelOptions.Section}:File: {error.Message}");
        }
        var spec = contents.Spec;
        int inputs = featureWidth + model.RequestFeatures;
        if (spec.Inputs != inputs)
        {
            throw Invalid($"{ModelOptions.Section}:File {file} holds a model of {spec.Inputs} inputs; this engine's model takes {inputs} "
                + $"({featureWidth} declared features under {FeatureOptions.Section} and {model.RequestFeatures} request features, {ModelOptions.Section}:RequestFeatures).");
        }
        if (kindSet && model.Kind != spec.Kind)
        {
            throw Invalid($"{ModelOptions.Section}:Kind is {model.Kind} but {ModelOptions.Section}:File holds a {spec.Kind} model (leave Kind unset to take the file's).");
        }
        if (hiddenSet && spec.Kind == ModelKind.Mlp && model.Hidden != spec.Hidden)
        {
            throw Invalid($"{ModelOptions.Section}:Hidden is {model.Hidden} but {ModelOptions.Section}:File holds an MLP of {spec.Hidden} hidden units (leave Hidden unset to take the file's).");
        }
        // A logistic model has no hidden layer: keep the configured value so its shape's fingerprint
        // (checkpoints) is the same as without the file.
        spec = spec.Kind == ModelKind.Logistic ? spec with { Hidden = model.Hidden, Seed = model.Seed } : spec with { Seed = model.Seed };
        return new ModelRegistry(spec, contents.Parameters, $"{file} ({contents.Format} {contents.Layout}, {(contents.HasStandardisation ? "with" : "without")} input standardisation)", time);
    }

    private static OptionsValidationException Invalid(string message) =>
        new(ModelOptions.Section, typeof(ModelOptions), [message]);
}

/// <summary>Resolves the model registry when the host starts (its services are built then) and reports its version.</summary>
internal sealed class ModelStartup(ModelRegistry registry, TrainingMetrics metrics) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        metrics.ObserveModelVersion(() => registry.Version);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

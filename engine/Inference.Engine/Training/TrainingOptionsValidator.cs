using Inference.Engine.Pipeline;
using Inference.Models;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Training;

/// <summary>Checks <c>Inference:Training</c> at start.</summary>
internal sealed class TrainingOptionsValidator : IValidateOptions<TrainingOptions>
{
    public ValidateOptionsResult Validate(string? name, TrainingOptions training)
    {
        var rules = new ConfigurationRules(TrainingOptions.Section);
        rules.Require(training.BatchSize is > 0 and <= 65_536, "BatchSize", training.BatchSize, "must be between 1 and 65536");
        rules.Require(training.MaxBatchDelayMs is > 0 and <= 600_000, "MaxBatchDelayMs", training.MaxBatchDelayMs, "must be between 1 and 600000");
        rules.Require(training.LearningRate > 0 && double.IsFinite(training.LearningRate), "LearningRate", training.LearningRate, "must be a positive number");
        rules.Require(training.PublishIntervalMs is >= 0 and <= 3_600_000, "PublishIntervalMs", training.PublishIntervalMs, "must be between 0 and 3600000");
        rules.Require(Enum.IsDefined(training.Optimizer), "Optimizer", training.Optimizer, "must be Sgd, Adam or Adagrad");
        return rules.Result;
    }
}

/// <summary>Checks <c>Inference:Model</c> at start.</summary>
internal sealed class ModelOptionsValidator : IValidateOptions<ModelOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelOptions model)
    {
        var rules = new ConfigurationRules(ModelOptions.Section);
        rules.Require(model.Kind is ModelKind.Logistic or ModelKind.Mlp, "Kind", model.Kind,
            "must be Logistic or Mlp: the models over ids (EmbeddingMlp, DotProduct) and their embedding tables are built in the engine's kernels and models but not yet served or trained by it");
        rules.Require(model.Hidden is > 0 and <= 65_536, "Hidden", model.Hidden, "must be between 1 and 65536");
        rules.Require(model.RequestFeatures is >= 0 and <= 4_096, "RequestFeatures", model.RequestFeatures, "must be between 0 and 4096");
        rules.Require(model.IntraOpThreads is > 0 and <= 1_024, "IntraOpThreads", model.IntraOpThreads, "must be between 1 and 1024");
        rules.Require(string.IsNullOrEmpty(model.File) || System.IO.File.Exists(model.File), "File", model.File, "must name an existing model file (a state_dict saved by torch.save, or .safetensors)");
        return rules.Result;
    }
}

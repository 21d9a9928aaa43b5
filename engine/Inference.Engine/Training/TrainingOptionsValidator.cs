using Inference.Engine.Features;
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
        rules.Require(Enum.IsDefined(training.EmbeddingOptimizer), "EmbeddingOptimizer", training.EmbeddingOptimizer, "must be Adagrad or Ftrl");
        rules.Require(training.EmbeddingLearningRate > 0 && float.IsFinite(training.EmbeddingLearningRate), "EmbeddingLearningRate", training.EmbeddingLearningRate, "must be a positive number");
        rules.Require(training.EmbeddingInitialAccumulator >= 0 && float.IsFinite(training.EmbeddingInitialAccumulator), "EmbeddingInitialAccumulator", training.EmbeddingInitialAccumulator, "must be 0 or more");
        rules.Require(training.EmbeddingBeta >= 0 && float.IsFinite(training.EmbeddingBeta), "EmbeddingBeta", training.EmbeddingBeta, "must be 0 or more");
        rules.Require(training.EmbeddingL1 >= 0 && float.IsFinite(training.EmbeddingL1), "EmbeddingL1", training.EmbeddingL1, "must be 0 or more");
        rules.Require(training.EmbeddingL2 >= 0 && float.IsFinite(training.EmbeddingL2), "EmbeddingL2", training.EmbeddingL2, "must be 0 or more");
        rules.Require(training.EmbeddingInitScale >= 0 && float.IsFinite(training.EmbeddingInitScale), "EmbeddingInitScale", training.EmbeddingInitScale, "must be 0 or more");
        rules.Require(training.ValidationWindow is > 0 and <= 1_000_000, "ValidationWindow", training.ValidationWindow, "must be between 1 and 1000000");
        rules.Require(training.FeatureLogCapacity is >= 0 and <= 1 << 28, "FeatureLogCapacity", training.FeatureLogCapacity, "must be between 0 (no feature log) and 268435456");
        rules.Require(training.MaxLabelDelayMs is > 0 and <= 366L * 24 * 3_600_000, "MaxLabelDelayMs", training.MaxLabelDelayMs, "must be between 1 and 31622400000 (a year)");
        rules.Require(training.PointInTimeEvents is >= 0 and <= 1 << 28, "PointInTimeEvents", training.PointInTimeEvents, "must be between 0 (no journal) and 268435456");
        rules.Require(training.GuardLabels is > 0 and <= 10_000_000, "GuardLabels", training.GuardLabels, "must be between 1 and 10000000");
        rules.Require(training.PromoteMargin >= 0 && double.IsFinite(training.PromoteMargin), "PromoteMargin", training.PromoteMargin, "must be 0 or more (a log-loss difference)");
        rules.Require(training.RollbackMargin >= 0 && double.IsFinite(training.RollbackMargin), "RollbackMargin", training.RollbackMargin, "must be 0 or more (a log-loss difference)");
        rules.Require(training.EmbeddingOptimizer != Kernels.Embeddings.SparseOptimizerKind.Ftrl || training.EmbeddingBeta > 0 || training.EmbeddingInitialAccumulator > 0,
            "EmbeddingBeta", training.EmbeddingBeta, "or EmbeddingInitialAccumulator must be above 0 with Ftrl (its first step would divide by zero)");
        return rules.Result;
    }
}

/// <summary>Checks <c>Inference:Model</c> at start.</summary>
/// <param name="role">The engine's role.</param>
/// <param name="sparse">The embedding rows' optimizer: a pool syncs rows under Adagrad only.</param>
internal sealed class ModelOptionsValidator(EngineRole role = EngineRole.All, Kernels.Embeddings.SparseOptimizerKind sparse = Kernels.Embeddings.SparseOptimizerKind.Adagrad) : IValidateOptions<ModelOptions>
{
    /// <summary>Label fields an id input of source Request may not be named after.</summary>
    private static readonly string[] Reserved = ["entity", "ts", "label", "request_id", "request_features"];

    public ValidateOptionsResult Validate(string? name, ModelOptions model)
    {
        var rules = new ConfigurationRules(ModelOptions.Section);
        rules.Require(Enum.IsDefined(model.Kind), "Kind", model.Kind, "must be Logistic, Mlp, EmbeddingMlp or DotProduct");
        rules.Require(model.Hidden is > 0 and <= 65_536, "Hidden", model.Hidden, "must be between 1 and 65536");
        rules.Require(model.RequestFeatures is >= 0 and <= 4_096, "RequestFeatures", model.RequestFeatures, "must be between 0 and 4096");
        rules.Require(model.IntraOpThreads is > 0 and <= 1_024, "IntraOpThreads", model.IntraOpThreads, "must be between 1 and 1024");
        rules.Require(string.IsNullOrEmpty(model.File) || System.IO.File.Exists(model.File), "File", model.File, "must name an existing model file (a state_dict saved by torch.save, or .safetensors)");
        ValidateIds(rules, model);
        return rules.Result;
    }

    private void ValidateIds(ConfigurationRules rules, ModelOptions model)
    {
        var ids = model.Ids;
        bool overIds = model.Kind is ModelKind.EmbeddingMlp or ModelKind.DotProduct;
        if (!overIds)
        {
            rules.Require(ids.Count == 0, "Ids", ids.Count, $"declares id inputs, which only the models over ids read: set {ModelOptions.Section}:Kind to EmbeddingMlp or DotProduct");
            return;
        }
        rules.Require(ids.Count is > 0 and <= LabelIdFields.MaxInputs, "Ids", ids.Count, $"must declare 1 to {LabelIdFields.MaxInputs} id inputs for a {model.Kind} model");
        rules.Require(role != EngineRole.Worker || sparse != Kernels.Embeddings.SparseOptimizerKind.Ftrl, "Ids", ids.Count,
            "sync through a pool's parameter server under Inference:Training:EmbeddingOptimizer Adagrad only (FTRL derives a row's values from its state, which the pool's sum of changes does not give)");
        rules.Require(string.IsNullOrEmpty(model.File), "File", model.File, $"cannot start a {model.Kind} model: model files hold no embedding tables yet");
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < ids.Count; i++)
        {
            var id = ids[i];
            string at = $"Ids:{i}:";
            rules.Require(!string.IsNullOrWhiteSpace(id.Name) && names.Add(id.Name), at + "Name", id.Name, "must be a name, unique among the id inputs");
            rules.Require(Enum.IsDefined(id.Source), at + "Source", id.Source,
                "must be Request (a Score row's ids entry, a label's field), Entity (the entity itself) or LastOf (an event field's value in the entity's newest event)");
            rules.Require(id.Source != IdSource.LastOf || (!string.IsNullOrWhiteSpace(id.Field) && id.Field is not ("entity" or "ts")), at + "Field", id.Field,
                "must name the event field whose value in the entity's newest event is the id (not 'entity' or 'ts')");
            rules.Require(id.Source != IdSource.Request || !Reserved.Contains(id.Name), at + "Name", id.Name,
                $"names a label field of its own ({string.Join(", ", Reserved)}); an id input of source Request needs another name");
            rules.Require(id.Dimension is > 0 and <= 1_024, at + "Dimension", id.Dimension, "must be between 1 and 1024");
            rules.Require(id.MinCount is > 0 and <= 1_000_000, at + "MinCount", id.MinCount, "must be between 1 and 1000000");
            rules.Require(id.TtlMs >= 0, at + "TtlMs", id.TtlMs, "must be 0 (no TTL) or more");
            rules.Require(id.Capacity is >= 2 and <= 1 << 28, at + "Capacity", id.Capacity, "must be between 2 and 268435456");
        }
        var spec = new ModelSpec(model.Kind, 1, model.Hidden, model.Seed, [.. ids.Select(i => i.Dimension)]);
        if (spec.Problem() is { } problem)
        {
            rules.Fail($"{ModelOptions.Section}:Ids: {problem}.");
        }
    }
}

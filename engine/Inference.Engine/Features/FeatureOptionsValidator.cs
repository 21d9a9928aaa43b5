using Inference.Engine.Pipeline;
using Inference.Kernels.Features;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Features;

/// <summary>Checks <c>Inference:Features</c> at start, the declared features included (a bad one is named).</summary>
internal sealed class FeatureOptionsValidator : IValidateOptions<FeatureOptions>
{
    public ValidateOptionsResult Validate(string? name, FeatureOptions features)
    {
        var rules = new ConfigurationRules(FeatureOptions.Section);
        try
        {
            _ = new FeaturePlan(features.Definitions);
        }
        catch (FeatureDefinitionException error)
        {
            rules.Fail($"{FeatureOptions.Section}:Definitions{(features.File is null ? "" : $" (from {features.File})")}: {error.Message}");
        }
        rules.Require(features.InitialCapacity > 0, "InitialCapacity", features.InitialCapacity, "must be at least 1 (it is capped at Inference:Features:Capacity)");
        rules.Require(features.Capacity is > 0 and <= 100_000_000, "Capacity", features.Capacity, "must be between 1 and 100000000");
        rules.Require(features.EntityTtlMs >= 0, "EntityTtlMs", features.EntityTtlMs, "must be 0 (keep entities) or a positive number of milliseconds");
        rules.Require(features.EvictionScanIntervalMs is >= 100 and <= 86_400_000, "EvictionScanIntervalMs", features.EvictionScanIntervalMs, "must be between 100 and 86400000");
        // The table keeps a batch's worth of slots free (evicting the idlest entities to do so when at its
        // capacity): a capacity under two batches would hold fewer entities than batch events.
        rules.Require(features.MaxBatchEvents > 0 && features.MaxBatchEvents <= Math.Min(1_000_000, features.Capacity / 2), "MaxBatchEvents", features.MaxBatchEvents,
            "must be between 1 and min(1000000, Inference:Features:Capacity / 2): a batch's worth of slots is kept free, so the table holds Capacity − MaxBatchEvents entities");
        rules.Require(features.MaxBatchDelayMs is > 0 and <= 60_000, "MaxBatchDelayMs", features.MaxBatchDelayMs, "must be between 1 and 60000");
        rules.Require(features.MaxFutureMs >= 0, "MaxFutureMs", features.MaxFutureMs, "must be 0 (any time) or a positive number of milliseconds");
        rules.Require(Enum.IsDefined(features.Accelerator), "Accelerator", features.Accelerator, "must be Auto, Cuda, Cpu or CpuSimulator");
        return rules.Result;
    }
}

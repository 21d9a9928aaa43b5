using Inference.Kernels.Features;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Hosting;

/// <summary>Checks the configuration at start; every failure names its key under <c>Inference:</c>.</summary>
internal sealed class InferenceOptionsValidator : IValidateOptions<InferenceOptions>
{
    public ValidateOptionsResult Validate(string? name, InferenceOptions options)
    {
        var failures = new List<string>();
        void Require(bool ok, string key, object? value, string rule)
        {
            if (!ok)
            {
                failures.Add($"{InferenceOptions.Section}:{key} {rule} (got '{value}').");
            }
        }

        bool needsKafka = options.Role != EngineRole.Ps;
        var kafka = options.Kafka;
        if (needsKafka)
        {
            Require(kafka.Embedded || !string.IsNullOrWhiteSpace(kafka.BootstrapServers), "Kafka:BootstrapServers", kafka.BootstrapServers,
                "must name the Kafka cluster (or set Inference:Kafka:Embedded=true for the embedded broker)");
            Require(!string.IsNullOrWhiteSpace(kafka.EventsTopic), "Kafka:EventsTopic", kafka.EventsTopic, "must not be empty");
            Require(!string.IsNullOrWhiteSpace(kafka.LabelsTopic), "Kafka:LabelsTopic", kafka.LabelsTopic, "must not be empty");
            Require(!string.IsNullOrWhiteSpace(kafka.GroupId), "Kafka:GroupId", kafka.GroupId, "must not be empty");
            Require(kafka.EmbeddedPartitions is > 0 and <= 10_000, "Kafka:EmbeddedPartitions", kafka.EmbeddedPartitions, "must be between 1 and 10000");
            Require(kafka.SessionTimeoutMs is >= 1_000 and <= 3_600_000, "Kafka:SessionTimeoutMs", kafka.SessionTimeoutMs, "must be between 1000 and 3600000");
        }

        var features = options.Features;
        try
        {
            _ = new FeaturePlan(features.Definitions);
        }
        catch (FeatureDefinitionException error)
        {
            failures.Add($"{InferenceOptions.Section}:Features:Definitions{(features.File is null ? "" : $" (from {features.File})")}: {error.Message}");
        }
        Require(features.InitialCapacity > 0, "Features:InitialCapacity", features.InitialCapacity, "must be at least 1 (it is capped at Inference:Features:Capacity)");
        Require(features.Capacity is > 0 and <= 100_000_000, "Features:Capacity", features.Capacity, "must be between 1 and 100000000");
        Require(features.EntityTtlMs >= 0, "Features:EntityTtlMs", features.EntityTtlMs, "must be 0 (keep entities) or a positive number of milliseconds");
        Require(features.EvictionScanIntervalMs is >= 100 and <= 86_400_000, "Features:EvictionScanIntervalMs", features.EvictionScanIntervalMs, "must be between 100 and 86400000");
        Require(features.MaxBatchEvents > 0 && features.MaxBatchEvents <= Math.Min(1_000_000, features.Capacity), "Features:MaxBatchEvents", features.MaxBatchEvents, "must be between 1 and min(1000000, Inference:Features:Capacity)");
        Require(features.MaxBatchDelayMs is > 0 and <= 60_000, "Features:MaxBatchDelayMs", features.MaxBatchDelayMs, "must be between 1 and 60000");
        Require(Enum.IsDefined(features.Accelerator), "Features:Accelerator", features.Accelerator, "must be Auto, Cuda, Cpu or CpuSimulator");

        var model = options.Model;
        Require(Enum.IsDefined(model.Kind), "Model:Kind", model.Kind, "must be Logistic or Mlp");
        Require(model.Hidden is > 0 and <= 65_536, "Model:Hidden", model.Hidden, "must be between 1 and 65536");
        Require(model.RequestFeatures is >= 0 and <= 4_096, "Model:RequestFeatures", model.RequestFeatures, "must be between 0 and 4096");
        Require(model.IntraOpThreads is > 0 and <= 1_024, "Model:IntraOpThreads", model.IntraOpThreads, "must be between 1 and 1024");

        var training = options.Training;
        Require(training.BatchSize is > 0 and <= 65_536, "Training:BatchSize", training.BatchSize, "must be between 1 and 65536");
        Require(training.MaxBatchDelayMs is > 0 and <= 600_000, "Training:MaxBatchDelayMs", training.MaxBatchDelayMs, "must be between 1 and 600000");
        Require(training.LearningRate > 0 && double.IsFinite(training.LearningRate), "Training:LearningRate", training.LearningRate, "must be a positive number");
        Require(training.PublishIntervalMs is >= 0 and <= 3_600_000, "Training:PublishIntervalMs", training.PublishIntervalMs, "must be between 0 and 3600000");

        var serving = options.Serving;
        Require(serving.Port is >= 0 and <= 65_535, "Serving:Port", serving.Port, "must be a TCP port (0 picks a free one)");
        Require(!string.IsNullOrWhiteSpace(serving.Host), "Serving:Host", serving.Host, "must be an address to listen on");
        Require(serving.MaxRowsPerRequest is > 0 and <= 1_000_000, "Serving:MaxRowsPerRequest", serving.MaxRowsPerRequest, "must be between 1 and 1000000");
        Require(serving.MaxBatchRows is > 0 and <= 1_000_000, "Serving:MaxBatchRows", serving.MaxBatchRows, "must be between 1 and 1000000");
        Require(serving.MaxQueueDelayMicroseconds is >= 0 and <= 1_000_000, "Serving:MaxQueueDelayMicroseconds", serving.MaxQueueDelayMicroseconds, "must be between 0 (launch at once) and 1000000");
        Require(serving.MaxQueuedRequests is > 0 and <= 1_000_000, "Serving:MaxQueuedRequests", serving.MaxQueuedRequests, "must be between 1 and 1000000");

        var sync = options.Sync;
        if (options.Role == EngineRole.Worker)
        {
            Require(Uri.TryCreate(sync.ParameterServer, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https", "Sync:ParameterServer", sync.ParameterServer,
                "must be the parameter server's address, e.g. http://127.0.0.1:50052, for role Worker");
        }
        Require(sync.IntervalMs is >= 10 and <= 3_600_000, "Sync:IntervalMs", sync.IntervalMs, "must be between 10 and 3600000");

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

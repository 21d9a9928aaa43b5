using Inference.Models.Training;

namespace Inference.Engine.Training;

/// <summary>The training stage, section <c>Inference:Training</c>.</summary>
public sealed class TrainingOptions
{
    public const string Section = "Inference:Training";

    public const int DefaultBatchSize = 64;
    public const int DefaultMaxBatchDelayMs = 200;
    public const double DefaultLearningRate = 0.1;
    public const int DefaultPublishIntervalMs = 250;

    public bool Enabled { get; set; } = true;

    /// <summary>Labels per SGD step.</summary>
    public int BatchSize { get; set; } = DefaultBatchSize;

    /// <summary>A step runs on fewer labels once the oldest has waited this long.</summary>
    public int MaxBatchDelayMs { get; set; } = DefaultMaxBatchDelayMs;

    public double LearningRate { get; set; } = DefaultLearningRate;

    /// <summary>The dense part's optimizer: Sgd, Adam or Adagrad (its state is checkpointed with the weights).</summary>
    public DenseOptimizerKind Optimizer { get; set; } = DenseOptimizerKind.Sgd;

    /// <summary>The trainer publishes its weights to serving at most this often.</summary>
    public int PublishIntervalMs { get; set; } = DefaultPublishIntervalMs;
}

using Inference.Kernels.Embeddings;
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
    public const int DefaultFeatureLogCapacity = 1 << 20;
    public const int DefaultValidationWindow = 10_000;
    public const int DefaultGuardLabels = 2_000;
    public const int DefaultPointInTimeEvents = 1 << 20;
    public const double DefaultPromoteMargin = 0.005;
    public const double DefaultRollbackMargin = 0.02;
    public const long DefaultMaxLabelDelayMs = 7L * 24 * 3_600_000;

    public bool Enabled { get; set; } = true;

    /// <summary>Labels per SGD step.</summary>
    public int BatchSize { get; set; } = DefaultBatchSize;

    /// <summary>A step runs on fewer labels once the oldest has waited this long.</summary>
    public int MaxBatchDelayMs { get; set; } = DefaultMaxBatchDelayMs;

    public double LearningRate { get; set; } = DefaultLearningRate;

    /// <summary>The dense part's optimizer: Sgd, Adam or Adagrad (its state is checkpointed with the weights).</summary>
    public DenseOptimizerKind Optimizer { get; set; } = DenseOptimizerKind.Sgd;

    /// <summary>The optimizer of the embedding rows (models over ids): applied to the rows a mini-batch touched.</summary>
    public SparseOptimizerKind EmbeddingOptimizer { get; set; } = SparseOptimizerKind.Adagrad;

    /// <summary>Adagrad's learning rate, FTRL's α, for the embedding rows.</summary>
    public float EmbeddingLearningRate { get; set; } = 0.3f;

    /// <summary>Each coordinate's accumulator when its row is created (Adagrad's initial accumulator, FTRL's n).</summary>
    public float EmbeddingInitialAccumulator { get; set; } = 0.1f;

    /// <summary>FTRL's β.</summary>
    public float EmbeddingBeta { get; set; } = 1f;

    /// <summary>FTRL's L1 strength (drives coordinates to exactly zero).</summary>
    public float EmbeddingL1 { get; set; }

    /// <summary>FTRL's L2 strength.</summary>
    public float EmbeddingL2 { get; set; }

    /// <summary>A new embedding row's values are drawn uniformly from ±this, by a hash of its id (the same on every node).</summary>
    public float EmbeddingInitScale { get; set; } = 0.01f;

    /// <summary>The embedding rows' sparse optimizer as these options set it.</summary>
    internal SparseOptimizer Sparse => new()
    {
        Kind = EmbeddingOptimizer,
        LearningRate = EmbeddingLearningRate,
        InitialAccumulator = EmbeddingInitialAccumulator,
        Beta = EmbeddingBeta,
        L1 = EmbeddingL1,
        L2 = EmbeddingL2,
    };

    /// <summary>Rows of the feature log (what Score served per request id, for labels naming it); 0 keeps none.</summary>
    public int FeatureLogCapacity { get; set; } = DefaultFeatureLogCapacity;

    /// <summary>
    /// A Kafka topic the feature log is also written to (e.g. <c>features.log</c>), read back when the trainer starts so
    /// that labels of requests served before a restart still join; unset keeps the log in memory only.
    /// </summary>
    public string? FeatureLogTopic { get; set; }

    /// <summary>How long after its Score a label naming the request still learns from what was served (later: from the state at its time).</summary>
    public long MaxLabelDelayMs { get; set; } = DefaultMaxLabelDelayMs;

    /// <summary>
    /// Events journaled (the newest) so that a label without a joinable request reads its entity's running
    /// aggregates as of its time, by replaying the entity's events up to it; 0 journals none (such labels then read
    /// running aggregates as of the newest event, counted inexact).
    /// </summary>
    public int PointInTimeEvents { get; set; } = DefaultPointInTimeEvents;

    /// <summary>Labels of progressive validation's sliding window (log loss, AUC and calibration of the serving versions).</summary>
    public int ValidationWindow { get; set; } = DefaultValidationWindow;

    /// <summary>Labels per window of the model guard: a candidate and the serving model are compared over this many labels.</summary>
    public int GuardLabels { get; set; } = DefaultGuardLabels;

    /// <summary>A candidate whose mean log loss over a window is below the serving model's by more than this is promoted (when it may be).</summary>
    public double PromoteMargin { get; set; } = DefaultPromoteMargin;

    /// <summary>
    /// A candidate whose mean log loss over a window is above the serving model's by more than this is withdrawn; the
    /// serving model whose loss is above its baseline's (the version that last held up) by more than this is rolled back.
    /// </summary>
    public double RollbackMargin { get; set; } = DefaultRollbackMargin;

    /// <summary>Whether the serving model is rolled back to its baseline without a command (candidates are guarded either way).</summary>
    public bool AutoRollback { get; set; } = true;

    /// <summary>The trainer publishes its weights to serving at most this often.</summary>
    public int PublishIntervalMs { get; set; } = DefaultPublishIntervalMs;
}

using Microsoft.Extensions.Logging;

namespace Inference.Engine.Training;

internal static partial class TrainingLog
{
    [LoggerMessage(300, LogLevel.Information, "Training {Kind} model ({Inputs} inputs) from topic {Topic}: mini-batches of {BatchSize}, learning rate {LearningRate}.")]
    public static partial void Started(ILogger logger, string kind, int inputs, string topic, int batchSize, double learningRate);

    [LoggerMessage(305, LogLevel.Warning, "Skipped a mini-batch of {Labels} labels: {Reason}; the model keeps its last good weights.")]
    public static partial void SkippedBatch(ILogger logger, int labels, string reason);

    [LoggerMessage(306, LogLevel.Information, "Feature log: {Rows} rows served within the label delay read back from topic {Topic}; every row served from now on is written there.")]
    public static partial void FeatureLogRestored(ILogger logger, int rows, string topic);

    [LoggerMessage(307, LogLevel.Warning, "Feature log: topic {Topic} could not be read back ({Reason}); rows served before this start are not joined.")]
    public static partial void FeatureLogUnreadable(ILogger logger, string topic, string reason);

    [LoggerMessage(308, LogLevel.Warning, "The trainer goes on with the hyperparameters of a candidate learner promoted before the checkpoint (learning rate {LearningRate}, {Optimizer}), not Inference:Training:LearningRate and Optimizer.")]
    public static partial void PromotedHyperparameters(ILogger logger, double learningRate, string optimizer);

    [LoggerMessage(303, LogLevel.Warning, "{Problem} This node reads every label partition as its own group instead.")]
    public static partial void NotCoPartitioned(ILogger logger, string problem);
}

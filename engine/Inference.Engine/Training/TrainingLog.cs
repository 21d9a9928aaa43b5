using Microsoft.Extensions.Logging;

namespace Inference.Engine.Training;

internal static partial class TrainingLog
{
    [LoggerMessage(300, LogLevel.Information, "Training {Kind} model ({Inputs} inputs) from topic {Topic}: mini-batches of {BatchSize}, learning rate {LearningRate}.")]
    public static partial void Started(ILogger logger, string kind, int inputs, string topic, int batchSize, double learningRate);

    [LoggerMessage(301, LogLevel.Debug, "Set aside malformed label at {Topic}[{Partition}]@{Offset}.")]
    public static partial void MalformedLabel(ILogger logger, string topic, int partition, long offset);

    [LoggerMessage(304, LogLevel.Warning, "Kafka error on the labels consumer: {Reason}")]
    public static partial void KafkaError(ILogger logger, string reason);
}

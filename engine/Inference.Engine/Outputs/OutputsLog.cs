using Microsoft.Extensions.Logging;

namespace Inference.Engine.Outputs;

internal static partial class OutputsLog
{
    [LoggerMessage(900, LogLevel.Information, "Stream scoring {Select} events of {Source} to {Topic} ({Format}) in Kafka transactions as {TransactionalId}, generation {Generation}; resuming after {Progress} (the broker {Filtering}).")]
    public static partial void Started(ILogger logger, string select, string source, string topic, OutputFormat format, string transactionalId, long generation, string progress, string filtering);

    [LoggerMessage(901, LogLevel.Warning, "Stream-scoring transaction {Transaction} failed and is retried as the next one: {Reason}")]
    public static partial void Retrying(ILogger logger, string transaction, string reason);

    [LoggerMessage(902, LogLevel.Critical, "Stream scoring cannot go on (another producer took over its transactional id, or a fatal Kafka error): {Reason}. The engine stops.")]
    public static partial void Fatal(ILogger logger, string reason);

    [LoggerMessage(903, LogLevel.Information, "Webhook deliveries to {Url} from {Topic} as group {GroupId}: up to {Attempts} attempts each, then {DeadLetterTopic}.")]
    public static partial void WebhookStarted(ILogger logger, string url, string topic, string groupId, int attempts, string deadLetterTopic);

    [LoggerMessage(904, LogLevel.Warning, "Alert {Id} was not accepted by {Url} after {Attempts} attempts ({Reason}); set aside on {DeadLetterTopic}.")]
    public static partial void DeadLettered(ILogger logger, string id, string url, int attempts, string reason, string deadLetterTopic);

    [LoggerMessage(905, LogLevel.Warning, "Webhook delivery to {Url} stopped on an error and restarts: {Reason}")]
    public static partial void WebhookFailed(ILogger logger, string url, string reason);

    [LoggerMessage(906, LogLevel.Critical, "Stream scoring cannot start: the progress topic {Topic} could not be read ({Reason}). The engine stops rather than guess where scoring stands.")]
    public static partial void CannotStart(ILogger logger, string topic, string reason);

    [LoggerMessage(907, LogLevel.Warning, "Ingest waited {WaitedMs:0} ms for stream scoring: {Pending} applied batches waited for their transaction to {Topic} (the scores producer or the cluster is not keeping up).")]
    public static partial void Backpressure(ILogger logger, double waitedMs, int pending, string topic);

    [LoggerMessage(908, LogLevel.Information, "Stream scoring took over partitions {Partitions}: resuming after {Progress}.")]
    public static partial void TookOver(ILogger logger, string partitions, string progress);
}

using Microsoft.Extensions.Logging;

namespace Inference.Engine.Outputs;

internal static partial class OutputsLog
{
    [LoggerMessage(900, LogLevel.Information, "Stream scoring {Select} events of {Source} to {Topic} ({Format}) in Kafka transactions as {TransactionalId}; resuming after {Progress}.")]
    public static partial void Started(ILogger logger, string select, string source, string topic, OutputFormat format, string transactionalId, string progress);

    [LoggerMessage(901, LogLevel.Warning, "A stream-scoring transaction failed and is retried: {Reason}")]
    public static partial void Retrying(ILogger logger, string reason);

    [LoggerMessage(902, LogLevel.Critical, "Stream scoring cannot go on (another producer took over its transactional id, or a fatal Kafka error): {Reason}. The engine stops.")]
    public static partial void Fatal(ILogger logger, string reason);

    [LoggerMessage(903, LogLevel.Information, "Webhook deliveries to {Url} from {Topic} as group {GroupId}: up to {Attempts} attempts each, then {DeadLetterTopic}.")]
    public static partial void WebhookStarted(ILogger logger, string url, string topic, string groupId, int attempts, string deadLetterTopic);

    [LoggerMessage(904, LogLevel.Warning, "Alert {Id} was not accepted by {Url} after {Attempts} attempts ({Reason}); set aside on {DeadLetterTopic}.")]
    public static partial void DeadLettered(ILogger logger, string id, string url, int attempts, string reason, string deadLetterTopic);

    [LoggerMessage(905, LogLevel.Warning, "Webhook delivery to {Url} stopped on an error and restarts: {Reason}")]
    public static partial void WebhookFailed(ILogger logger, string url, string reason);
}

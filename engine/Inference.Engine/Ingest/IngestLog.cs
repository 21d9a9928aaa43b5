using Inference.Engine.Kafka;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Ingest;

internal static partial class IngestLog
{
    [LoggerMessage(100, LogLevel.Information, "Ingesting topic {Topic} ({Format} unless a message's content-type says otherwise) from {BootstrapServers} as group {GroupId}; micro-batches of up to {MaxEvents} events or {MaxDelayMs} ms, sooner when the device is free.")]
    public static partial void Started(ILogger logger, string topic, EventFormat format, string bootstrapServers, string groupId, int maxEvents, int maxDelayMs);

    [LoggerMessage(101, LogLevel.Debug, "Set aside malformed event at {Topic}[{Partition}]@{Offset}: {Reason}.")]
    public static partial void Malformed(ILogger logger, string topic, int partition, long offset, string reason);

    [LoggerMessage(102, LogLevel.Warning, "Data loss: {Message}")]
    public static partial void DataLoss(ILogger logger, string message);

    [LoggerMessage(103, LogLevel.Warning, "Kafka error: {Reason}")]
    public static partial void KafkaError(ILogger logger, string reason);

    [LoggerMessage(104, LogLevel.Information, "Partitions of {Topic} assigned: {Partitions}.")]
    public static partial void Assigned(ILogger logger, string topic, string partitions);

    [LoggerMessage(105, LogLevel.Information, "Partitions of {Topic} revoked: {Partitions}; applied the open batch and committed first.")]
    public static partial void Revoked(ILogger logger, string topic, string partitions);

    [LoggerMessage(109, LogLevel.Warning, "Partitions of {Topic} lost: {Partitions}; what was read from them is applied, not committed.")]
    public static partial void Lost(ILogger logger, string topic, string partitions);

    [LoggerMessage(110, LogLevel.Error, "Applying the open batch of {Topic} on revocation failed.")]
    public static partial void RevokeFailed(ILogger logger, string topic, Exception exception);

    [LoggerMessage(106, LogLevel.Error, "Applying a micro-batch failed; the consumer stops without committing it.")]
    public static partial void ApplyFailed(ILogger logger, Exception exception);

    [LoggerMessage(108, LogLevel.Warning, "librdkafka {Facility}: {Message}")]
    public static partial void KafkaLog(ILogger logger, string facility, string message);

    [LoggerMessage(107, LogLevel.Warning, "Setting aside an event on the dead-letter topic {Topic} failed: {Reason}")]
    public static partial void DeadLetterFailed(ILogger logger, string topic, string reason);

    [LoggerMessage(111, LogLevel.Warning, "The dead-letter topic {Topic} is not taking writes; {Pending} malformed messages wait to be set aside and no offset past them is committed meanwhile.")]
    public static partial void DeadLettersHeld(ILogger logger, string topic, long pending);

    [LoggerMessage(112, LogLevel.Warning, "Stopping with messages not yet set aside on {Topic}: their offsets are not committed, they are read again on start.")]
    public static partial void DeadLettersUnwritten(ILogger logger, string topic);

    [LoggerMessage(113, LogLevel.Warning, "Events on {Topic} partition {Partition} belong to other partitions under Kafka's default partitioner (murmur2 of the entity, {Partitions} partitions): "
        + "in a pool their entities' state is on a worker that is not asked for them. Partition by entity key with murmur2 (librdkafka: partitioner=murmur2_random; the Java client's default). "
        + "Counted in inference.ingest.misrouted; logged once per partition.")]
    public static partial void Misrouted(ILogger logger, string topic, int partition, int partitions);

    [LoggerMessage(114, LogLevel.Information, "Ingest path warmed in {Milliseconds:F0} ms (synthetic events decoded and applied to a scratch table) before the first message.")]
    public static partial void Warmed(ILogger logger, double milliseconds);
}

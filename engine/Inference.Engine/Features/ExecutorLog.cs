using Microsoft.Extensions.Logging;

namespace Inference.Engine.Features;

internal static partial class ExecutorLog
{
    [LoggerMessage(200, LogLevel.Information, "Device executor on {Accelerator}: dynamic batches up to {MaxBatchRows} rows, queue delay {DelayUs} µs, at most {MaxQueued} requests waiting.")]
    public static partial void Started(ILogger logger, string accelerator, int maxBatchRows, int delayUs, int maxQueued);

    [LoggerMessage(201, LogLevel.Warning, "The feature table is full at {Capacity} entities: evicted the {Count} idlest.")]
    public static partial void EvictedIdlest(ILogger logger, int count, int capacity);

    [LoggerMessage(202, LogLevel.Information, "The feature table grew to {Capacity} slots ({Entities} entities held).")]
    public static partial void Grew(ILogger logger, int capacity, int entities);

    [LoggerMessage(203, LogLevel.Error, "A serving batch failed on the device; its requests are answered with an error.")]
    public static partial void ServingFailed(ILogger logger, Exception error);

    [LoggerMessage(205, LogLevel.Error, "A maintenance slice (growth, eviction or the TTL scan) failed; it is retried later.")]
    public static partial void MaintenanceFailed(ILogger logger, Exception error);

    [LoggerMessage(204, LogLevel.Information, "{Count} features on {Accelerator}: {Features}; {Bytes} bytes of state per entity.")]
    public static partial void Declared(ILogger logger, int count, string features, long bytes, string accelerator);
}

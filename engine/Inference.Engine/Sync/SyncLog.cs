using Microsoft.Extensions.Logging;

namespace Inference.Engine.Sync;

internal static partial class SyncLog
{
    [LoggerMessage(500, LogLevel.Warning, "Parameter sync failed; training goes on and retries next interval: {Reason}")]
    public static partial void SyncFailed(ILogger logger, string reason);

    [LoggerMessage(501, LogLevel.Debug, "Synced with the parameter server at version {Version}.")]
    public static partial void Synced(ILogger logger, long version);

    [LoggerMessage(502, LogLevel.Warning, "The parameter server refused a stale push; its delta is dropped and the worker pulls: {Reason}")]
    public static partial void StaleDropped(ILogger logger, string reason);

    [LoggerMessage(503, LogLevel.Warning, "The parameter server restarted ({What}).")]
    public static partial void ServerRestarted(ILogger logger, string what);

    [LoggerMessage(504, LogLevel.Information, "Parameter shard restored at version {Version} ({Workers} workers' sequences) from {Path}.")]
    public static partial void ShardRestored(ILogger logger, long version, int workers, string path);

    [LoggerMessage(505, LogLevel.Warning, "Parameter shard checkpoint {Path} set aside: {Problem}")]
    public static partial void ShardCheckpointSetAside(ILogger logger, string path, string problem);

    [LoggerMessage(506, LogLevel.Debug, "Parameter shard checkpointed at version {Version} in {Path}.")]
    public static partial void ShardCheckpointed(ILogger logger, long version, string path);
}

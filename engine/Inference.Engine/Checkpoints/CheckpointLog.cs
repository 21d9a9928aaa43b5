using Microsoft.Extensions.Logging;

namespace Inference.Engine.Checkpoints;

internal static partial class CheckpointLog
{
    [LoggerMessage(700, LogLevel.Information, "Restored checkpoint {Path}: {Entities} entities, {Partitions} event partitions (events up to {MaxEventTimeMs}), {Labels} labels learned; read in {Milliseconds:0} ms. Replaying from its offsets.")]
    public static partial void Restored(ILogger logger, string path, int entities, int partitions, long maxEventTimeMs, long labels, double milliseconds);

    [LoggerMessage(701, LogLevel.Warning, "Skipped checkpoint {Path}: {Reason}")]
    public static partial void Skipped(ILogger logger, string path, string reason);

    [LoggerMessage(702, LogLevel.Information, "No checkpoint in {Directory}: starting from empty state.")]
    public static partial void NoneFound(ILogger logger, string directory);

    [LoggerMessage(703, LogLevel.Information, "Checkpoint {Path}: {Entities} entities, {Bytes} bytes; state copied in {PauseMs:0.0} ms, written in {WriteMs:0} ms.")]
    public static partial void Written(ILogger logger, string path, int entities, long bytes, double pauseMs, double writeMs);

    [LoggerMessage(704, LogLevel.Error, "A checkpoint failed; the next one is tried at its interval (offsets stay uncommitted meanwhile).")]
    public static partial void Failed(ILogger logger, Exception error);

    [LoggerMessage(705, LogLevel.Warning, "Checkpoint {Path} was taken under other {What}: set aside as {SetAside} (Inference:Checkpoints:DiscardMismatched is true).")]
    public static partial void Discarded(ILogger logger, string path, string what, string setAside);

    [LoggerMessage(706, LogLevel.Warning, "A checkpoint waits for {Count} dead letters on {Topic} to be written: nothing past them is checkpointed or committed until they are.")]
    public static partial void WaitingForDeadLetters(ILogger logger, long count, string topic);

    [LoggerMessage(707, LogLevel.Warning, "Skipped a checkpoint: {Reason}")]
    public static partial void NotTaken(ILogger logger, string reason);

    [LoggerMessage(708, LogLevel.Information, "Caught up with the events and labels since the checkpoint: ready.")]
    public static partial void Ready(ILogger logger);

    [LoggerMessage(620, LogLevel.Information, "Partitions {Partitions} taken over from {Path}: {Entities} entities.")]
    public static partial void HandedOver(ILogger logger, string partitions, string path, int entities);

    [LoggerMessage(621, LogLevel.Warning, "Checkpoint {Path} could not hand its partitions over ({Problem}); they are read from the start of the topic.")]
    public static partial void HandoverFailed(ILogger logger, string path, string problem);
}

using Microsoft.Extensions.Logging;

namespace Inference.Engine.Training;

internal static partial class LifecycleLog
{
    [LoggerMessage(320, LogLevel.Information, "Candidate {Version} registered in {Mode} (canary share {Share}).")]
    public static partial void CandidateLoaded(ILogger logger, string version, string mode, double share);

    [LoggerMessage(321, LogLevel.Warning, "Candidate {Version} withdrawn, never served as the model: {Why}.")]
    public static partial void CandidateWithdrawn(ILogger logger, string version, string why);

    [LoggerMessage(322, LogLevel.Information, "Promoted: {Version} serves now: {Why}.")]
    public static partial void Promoted(ILogger logger, string version, string why);

    [LoggerMessage(323, LogLevel.Warning, "Rolled back from v{From} to v{To}: {Why}.")]
    public static partial void RolledBack(ILogger logger, long from, long to, string why);
}

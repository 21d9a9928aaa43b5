using Microsoft.Extensions.Logging;

namespace Inference.Engine.Serving;

internal static partial class ServingLog
{
    [LoggerMessage(400, LogLevel.Debug, "Shed a Score call: {Queued} requests are waiting for the device.")]
    public static partial void Shed(ILogger logger, int queued);

    [LoggerMessage(401, LogLevel.Warning, "Pool announcement to the parameter server failed; routing goes on with the last map: {Reason}")]
    public static partial void AnnounceFailed(ILogger logger, string reason);
}

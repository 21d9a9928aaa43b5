using Microsoft.Extensions.Logging;

namespace Inference.Engine.Serving;

internal static partial class ServingLog
{
    [LoggerMessage(400, LogLevel.Debug, "Shed a Score call: {Queued} requests are waiting for the device.")]
    public static partial void Shed(ILogger logger, int queued);
}

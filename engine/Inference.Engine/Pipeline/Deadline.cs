namespace Inference.Engine.Pipeline;

/// <summary>
/// Deadlines as timestamps of a <see cref="TimeProvider"/> (<see cref="TimeProvider.GetTimestamp"/>), for
/// loops that wait at most until one. The clock is a parameter so that a test can drive it.
/// </summary>
internal static class Deadline
{
    public static long After(TimeProvider time, int milliseconds) => time.GetTimestamp() + milliseconds * time.TimestampFrequency / 1000;

    /// <summary>Milliseconds until the deadline, 0 once it has passed.</summary>
    public static int RemainingMs(TimeProvider time, long deadline) =>
        (int)Math.Max(0, (deadline - time.GetTimestamp()) * 1000 / time.TimestampFrequency);
}

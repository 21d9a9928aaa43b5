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

    /// <summary>
    /// Blocks a dedicated thread (the device's, a Kafka client's) for <paramref name="milliseconds"/> on the
    /// provider's timer, not on a task; true when <paramref name="cancellation"/> ended the wait first.
    /// </summary>
    public static bool Sleep(TimeProvider time, int milliseconds, CancellationToken cancellation)
    {
        // Not disposed: a timer callback already under way may still set it.
        var elapsed = new ManualResetEventSlim(false);
        using var timer = time.CreateTimer(state => ((ManualResetEventSlim)state!).Set(), elapsed, TimeSpan.FromMilliseconds(milliseconds), Timeout.InfiniteTimeSpan);
        try
        {
            elapsed.Wait(cancellation);
            return false;
        }
        catch (OperationCanceledException)
        {
            return true;
        }
    }
}

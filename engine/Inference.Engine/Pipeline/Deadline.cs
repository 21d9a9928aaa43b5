using System.Diagnostics;

namespace Inference.Engine.Pipeline;

/// <summary>Deadlines on the <see cref="Stopwatch"/> clock, for loops that wait at most until one.</summary>
internal static class Deadline
{
    public static long After(int milliseconds) => Stopwatch.GetTimestamp() + milliseconds * Stopwatch.Frequency / 1000;

    /// <summary>Milliseconds until the deadline, 0 once it has passed.</summary>
    public static int RemainingMs(long deadline) =>
        (int)Math.Max(0, (deadline - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency);
}

namespace Inference.Engine.Serving;

/// <summary>
/// The most recent Score durations in a fixed ring (no allocation per call), for the dashboard's
/// percentiles over the last second. Writers race benignly: a slot overwritten mid-read is one sample.
/// </summary>
internal sealed class LatencyWindow(TimeProvider time)
{
    private const int Size = 8_192;
    private readonly long[] _ticks = new long[Size];
    private readonly double[] _seconds = new double[Size];
    private long _next;

    public void Add(double seconds)
    {
        long slot = Interlocked.Increment(ref _next) & (Size - 1);
        _seconds[slot] = seconds;
        Volatile.Write(ref _ticks[slot], time.GetTimestamp());
    }

    /// <summary>The 50th and 99th percentiles (ms) of the calls recorded in the last <paramref name="window"/>; null when none.</summary>
    public (double P50, double P99)? Percentiles(TimeSpan window)
    {
        long since = time.GetTimestamp() - (long)(window.TotalSeconds * time.TimestampFrequency);
        var samples = new List<double>();
        for (int i = 0; i < Size; i++)
        {
            if (Volatile.Read(ref _ticks[i]) >= since)
            {
                samples.Add(_seconds[i] * 1e3);
            }
        }
        if (samples.Count == 0)
        {
            return null;
        }
        samples.Sort();
        return (samples[(int)(0.5 * (samples.Count - 1))], samples[(int)Math.Ceiling(0.99 * (samples.Count - 1))]);
    }
}

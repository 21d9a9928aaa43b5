namespace Inference.Host.Demo;

/// <summary>Client-side latencies, per progress window and for the whole run.</summary>
internal sealed class LatencyRecorder
{
    private readonly Lock _gate = new();
    private readonly List<double> _window = [];
    private readonly List<double> _all = [];

    public void Record(double milliseconds)
    {
        lock (_gate)
        {
            _window.Add(milliseconds);
            _all.Add(milliseconds);
        }
    }

    /// <summary>Count, p50 and p99 of the window since the last call, which starts a new window.</summary>
    public (int Count, double P50, double P99) TakeWindow()
    {
        lock (_gate)
        {
            var result = Summarise(_window);
            _window.Clear();
            return result;
        }
    }

    public (int Count, double P50, double P99) Total()
    {
        lock (_gate)
        {
            return Summarise(_all);
        }
    }

    private static (int Count, double P50, double P99) Summarise(List<double> values)
    {
        if (values.Count == 0)
        {
            return (0, double.NaN, double.NaN);
        }
        var sorted = values.ToArray();
        Array.Sort(sorted);
        return (sorted.Length, Percentile(sorted, 0.50), Percentile(sorted, 0.99));
    }

    /// <summary>Nearest-rank percentile of sorted values.</summary>
    internal static double Percentile(double[] sorted, double q) =>
        sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
}

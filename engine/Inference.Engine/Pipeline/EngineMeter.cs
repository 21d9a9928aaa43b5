using System.Diagnostics.Metrics;

namespace Inference.Engine.Pipeline;

/// <summary>The meter every stage's instruments belong to, as a Prometheus or OpenTelemetry setup names it.</summary>
internal static class EngineMeter
{
    public const string Name = "Inference";

    /// <summary>
    /// Bucket bounds of every histogram in seconds, 100 µs to 10 s (the exporters' default bounds, 0 to 10,000, are
    /// meant for milliseconds: in seconds every Score call and every apply fell in the first bucket).
    /// </summary>
    public static InstrumentAdvice<double> Seconds { get; } = new()
    {
        HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    };
}

using System.Diagnostics.Metrics;

namespace Inference.Engine.Pipeline;

/// <summary>A counter instrument and its running total in this process (the demo and tests read totals).</summary>
internal sealed class TotalCounter(Counter<long> counter)
{
    private long _total;

    public TotalCounter(Meter meter, string name, string unit, string description)
        : this(meter.CreateCounter<long>(name, unit, description))
    {
    }

    public long Total => Interlocked.Read(ref _total);

    public void Add(long value)
    {
        Interlocked.Add(ref _total, value);
        counter.Add(value);
    }

    public void Add(long value, string tag, string tagValue)
    {
        Interlocked.Add(ref _total, value);
        // Build the tag only when someone listens.
        if (counter.Enabled)
        {
            counter.Add(value, new KeyValuePair<string, object?>(tag, tagValue));
        }
    }
}

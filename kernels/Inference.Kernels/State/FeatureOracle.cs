namespace Inference.Kernels.State;

/// <summary>
/// The aggregates computed the plain way, one event at a time in event-time order, written for
/// clarity rather than speed: the reference the kernels are checked against in tests and in the
/// GPU check.
/// </summary>
public sealed class FeatureOracle(int fields)
{
    private readonly Dictionary<int, List<(long Time, float[] Values)>> _events = [];

    public int Fields => fields;

    public IEnumerable<int> Slots => _events.Keys;

    public void Add(int slot, long time, float[] values)
    {
        if (values.Length != fields)
        {
            throw new ArgumentException($"Expected {fields} values.", nameof(values));
        }
        if (!_events.TryGetValue(slot, out var list))
        {
            _events[slot] = list = [];
        }
        list.Add((time, values));
    }

    public long Count(int slot) => _events[slot].Count;

    public long MaxTime(int slot) => _events[slot].Max(e => e.Time);

    /// <summary>The sum in double of the float values, in event-time order.</summary>
    public double Sum(int slot, int field) => _events[slot].OrderBy(e => e.Time).Sum(e => (double)e.Values[field]);

    /// <summary>Σ value · 2^(−(newest time − time) / half-life).</summary>
    public double DecayedSum(int slot, int field, double halfLifeMs)
    {
        long max = MaxTime(slot);
        return _events[slot].OrderBy(e => e.Time).Sum(e => e.Values[field] * Math.Pow(2, -(max - e.Time) / halfLifeMs));
    }
}

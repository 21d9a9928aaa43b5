namespace Inference.Kernels.Tests;

/// <summary>The aggregates computed the plain way, one event at a time, for comparison with the kernels.</summary>
internal sealed class FeatureReference(int fields)
{
    private readonly Dictionary<int, List<(long Time, float[] Values)>> _events = [];

    public void Add(int slot, long time, float[] values) =>
        (_events.TryGetValue(slot, out var list) ? list : _events[slot] = []).Add((time, values));

    public IEnumerable<int> Slots => _events.Keys;

    public long Count(int slot) => _events[slot].Count;

    public long MaxTime(int slot) => _events[slot].Max(e => e.Time);

    public double Sum(int slot, int field) => _events[slot].Sum(e => (double)e.Values[field]);

    public double DecayedSum(int slot, int field, double halfLifeMs)
    {
        long max = MaxTime(slot);
        return _events[slot].Sum(e => e.Values[field] * Math.Pow(2, -(max - e.Time) / halfLifeMs));
    }

    public int Fields => fields;
}

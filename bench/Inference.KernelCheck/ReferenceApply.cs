using System.Diagnostics;

namespace Inference.KernelCheck;

/// <summary>
/// The benchmark's features computed the plain way on one thread: a dictionary from entity key to
/// slot and one array per feature, updated event by event. The baseline the kernels are compared with.
/// </summary>
internal sealed class ReferenceApply : IApplyRunner
{
    private const double InverseHalfLife = 1.0 / 600_000;

    private readonly Dictionary<ulong, int> _slots;
    private readonly double[][] _state;
    private readonly long[] _anchor;
    private readonly int _features;
    private readonly Batch[] _timed;

    /// <summary>Builds the state and fills it (every entity held), as the kernel run does.</summary>
    public ReferenceApply(int entities, int features, int batchSize)
    {
        _features = features;
        _slots = new Dictionary<ulong, int>(entities);
        _state = new double[features][];
        _anchor = new long[entities];
        for (int f = 0; f < features; f++)
        {
            _state[f] = new double[entities];
        }
        for (int fill = 0; fill < 4 * entities / batchSize; fill++)
        {
            Apply(Bench.MakeBatch(entities, features, batchSize, fill));
        }
        _timed = [.. Enumerable.Range(100, 4).Select(s => Bench.MakeBatch(entities, features, batchSize, s))];
    }

    public double Run(double seconds)
    {
        var clock = Stopwatch.StartNew();
        long applied = 0;
        for (int i = 0; clock.Elapsed.TotalSeconds < seconds; i++)
        {
            var b = _timed[i % _timed.Length];
            Apply(b);
            applied += b.Keys.Length;
        }
        return applied / clock.Elapsed.TotalSeconds;
    }

    public void Dispose()
    {
    }

    private void Apply(Batch b)
    {
        for (int i = 0; i < b.Keys.Length; i++)
        {
            if (!_slots.TryGetValue(b.Keys[i], out int slot))
            {
                slot = _slots.Count;
                _slots.Add(b.Keys[i], slot);
            }
            long time = b.Times[i];
            // Only decayed features pay for the exponential (a 1-feature plan has none).
            double decay = 1.0, weight = 1.0;
            if (_features > 2)
            {
                decay = time > _anchor[slot] ? Math.Pow(2, -(time - _anchor[slot]) * InverseHalfLife) : 1.0;
                weight = time > _anchor[slot] ? 1.0 : Math.Pow(2, -(_anchor[slot] - time) * InverseHalfLife);
            }
            for (int f = 0; f < _features; f++)
            {
                double v = b.Numeric[f % b.Numeric.Length][i];
                switch (f % 4)
                {
                    case 0:
                        _state[f][slot] += v;
                        break;
                    case 1:
                        _state[f][slot] = Math.Max(_state[f][slot], v);
                        break;
                    case 2:
                        _state[f][slot] = _state[f][slot] * decay + v * weight;
                        break;
                    default:
                        if (time >= _anchor[slot])
                        {
                            _state[f][slot] = v;
                        }
                        break;
                }
            }
            _anchor[slot] = Math.Max(_anchor[slot], time);
        }
    }
}

using System.Diagnostics;

namespace Inference.KernelCheck;

/// <summary>
/// The benchmark's features computed the plain way on one thread: a dictionary from entity key to
/// slot and one array per feature, updated event by event. The baseline the kernels are compared with.
/// </summary>
internal static class ReferenceApply
{
    public static double EventsPerSecond(int entities, int features, int batchSize, double seconds)
    {
        var slots = new Dictionary<ulong, int>(entities);
        var state = new double[features][];
        var anchor = new long[entities];
        for (int f = 0; f < features; f++)
        {
            state[f] = new double[entities];
        }
        const double InverseHalfLife = 1.0 / 600_000;
        void Apply(Batch b)
        {
            for (int i = 0; i < b.Keys.Length; i++)
            {
                if (!slots.TryGetValue(b.Keys[i], out int slot))
                {
                    slot = slots.Count;
                    slots.Add(b.Keys[i], slot);
                }
                long time = b.Times[i];
                // Only decayed features pay for the exponential (a 1-feature plan has none).
                double decay = 1.0, weight = 1.0;
                if (features > 2)
                {
                    decay = time > anchor[slot] ? Math.Pow(2, -(time - anchor[slot]) * InverseHalfLife) : 1.0;
                    weight = time > anchor[slot] ? 1.0 : Math.Pow(2, -(anchor[slot] - time) * InverseHalfLife);
                }
                for (int f = 0; f < features; f++)
                {
                    double v = b.Numeric[f % b.Numeric.Length][i];
                    switch (f % 4)
                    {
                        case 0:
                            state[f][slot] += v;
                            break;
                        case 1:
                            state[f][slot] = Math.Max(state[f][slot], v);
                            break;
                        case 2:
                            state[f][slot] = state[f][slot] * decay + v * weight;
                            break;
                        default:
                            if (time >= anchor[slot])
                            {
                                state[f][slot] = v;
                            }
                            break;
                    }
                }
                anchor[slot] = Math.Max(anchor[slot], time);
            }
        }

        for (int fill = 0; fill < 4 * entities / batchSize; fill++)
        {
            Apply(Bench.MakeBatch(entities, features, batchSize, fill));
        }
        var timed = Enumerable.Range(100, 4).Select(s => Bench.MakeBatch(entities, features, batchSize, s)).ToArray();
        var clock = Stopwatch.StartNew();
        long applied = 0;
        for (int i = 0; clock.Elapsed.TotalSeconds < seconds; i++)
        {
            Apply(timed[i % timed.Length]);
            applied += batchSize;
        }
        return applied / clock.Elapsed.TotalSeconds;
    }
}

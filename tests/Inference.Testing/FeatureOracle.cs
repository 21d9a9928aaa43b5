using Inference.Kernels.Features;

namespace Inference.Testing;

/// <summary>
/// Every declared aggregation computed the plain way from the list of each entity's events, written
/// for clarity rather than speed: the reference the kernels are checked against (tests and the GPU
/// check). It applies events one by one, whatever the batches: lateness is judged against the entity's
/// newest event time before the event; windows are bucket-aligned; distinct counts are exact (the table's
/// HyperLogLog estimate is compared within <see cref="DistinctCountTolerance"/>).
/// </summary>
public sealed class FeatureOracle(FeaturePlan plan)
{
    private readonly Dictionary<ulong, List<Event>> _entities = [];
    private readonly Dictionary<ulong, long> _newest = [];

    public FeaturePlan Plan => plan;

    /// <summary>Per feature, events too late for its window so far.</summary>
    public long[] Late { get; } = new long[plan.Count];

    public IReadOnlyCollection<ulong> Entities => _entities.Keys;

    public void Apply(ulong[] entities, long[] times, float[][] numeric, ulong[][] keys)
    {
        for (int i = 0; i < entities.Length; i++)
        {
            ulong e = FeatureTable.TableKey(entities[i]);
            long before = _newest.TryGetValue(e, out long n) ? n : long.MinValue;
            _newest[e] = Math.Max(before, times[i]);
            var onTime = new bool[plan.Count];
            for (int f = 0; f < plan.Count; f++)
            {
                var d = plan.Definitions[f];
                onTime[f] = !d.IsWindowed || before == long.MinValue || times[i] >= before - d.AllowedLatenessMs;
                if (!onTime[f])
                {
                    Late[f]++;
                }
            }
            if (!_entities.TryGetValue(e, out var events))
            {
                _entities[e] = events = [];
            }
            events.Add(new Event(times[i], [.. numeric.Select(c => c[i])], [.. keys.Select(c => c[i])], onTime));
        }
    }

    public void Evict(ulong entity)
    {
        _entities.Remove(FeatureTable.TableKey(entity));
        _newest.Remove(FeatureTable.TableKey(entity));
    }

    public long Newest(ulong entity) => _entities[FeatureTable.TableKey(entity)].Max(e => e.Time);

    /// <summary>A feature's untransformed value as of <paramref name="time"/>; the default for an entity with no events.</summary>
    public double Value(ulong entity, int feature, long time)
    {
        var d = plan.Definitions[feature];
        if (!_entities.TryGetValue(FeatureTable.TableKey(entity), out var events) || events.Count == 0)
        {
            return d.Default;
        }
        if (d.Aggregation == Aggregation.Ratio)
        {
            double bottom = Value(entity, plan.IndexOf(d.Denominator!), time);
            return bottom == 0 ? d.Default : Value(entity, plan.IndexOf(d.Numerator!), time) / bottom;
        }
        int column = d.UsesNumericField ? plan.NumericFields.ToList().IndexOf(d.Field!) : -1;
        double V(Event e) => e.Numeric[column];
        long newest = events.Max(e => e.Time);
        var ordered = events.OrderBy(e => e.Time).ToList();
        switch (d.Aggregation)
        {
            case Aggregation.Count:
                return events.Count;
            case Aggregation.Sum:
                return ordered.Sum(V);
            case Aggregation.Mean:
                return ordered.Sum(V) / events.Count;
            case Aggregation.Min:
                return events.Min(V);
            case Aggregation.Max:
                return events.Max(V);
            case Aggregation.Last:
                return events.Where(e => e.Time == newest).Max(V);
            case Aggregation.TimeSinceLast:
                return Math.Max(0, time - newest);
            case Aggregation.DecayedSum:
            {
                long reference = Math.Max(time, newest);
                return ordered.Sum(e => V(e) * Math.Pow(2, -(reference - e.Time) / d.HalfLifeMs));
            }
            case Aggregation.DecayedMean:
            {
                double weights = ordered.Sum(e => Math.Pow(2, -(newest - e.Time) / d.HalfLifeMs));
                return weights > 0 ? ordered.Sum(e => V(e) * Math.Pow(2, -(newest - e.Time) / d.HalfLifeMs)) / weights : d.Default;
            }
            case Aggregation.WindowCount or Aggregation.WindowSum or Aggregation.WindowMean:
            {
                long width = d.HorizonMs / d.Buckets;
                long last = time / width;
                var inWindow = ordered.Where(e => e.OnTime[feature] && e.Time / width > last - d.Buckets && e.Time / width <= last).ToList();
                return d.Aggregation switch
                {
                    Aggregation.WindowCount => inWindow.Count,
                    Aggregation.WindowSum => inWindow.Sum(V),
                    _ => inWindow.Count > 0 ? inWindow.Sum(V) / inWindow.Count : d.Default,
                };
            }
            case Aggregation.DistinctCount:
            {
                int key = plan.KeyFields.ToList().IndexOf(d.Field!);
                return events.Select(e => e.Keys[key]).Distinct().Count();
            }
            default:
                throw new InvalidOperationException($"No reference for {d.Aggregation}.");
        }
    }

    /// <summary>
    /// How far a HyperLogLog estimate may be from the exact distinct count: four standard errors
    /// (1.04/√2^p) of the count, plus 2 for the smallest counts.
    /// </summary>
    public static double DistinctCountTolerance(int precision, double exact) =>
        4 * 1.04 / Math.Sqrt(1 << precision) * exact + 2;

    private sealed record Event(long Time, float[] Numeric, ulong[] Keys, bool[] OnTime);
}

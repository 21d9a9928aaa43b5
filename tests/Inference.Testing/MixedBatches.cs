using Inference.Kernels.Features;

namespace Inference.Testing;

/// <summary>
/// Random batches over every aggregation's inputs (<see cref="FeatureSelfCheck.AllAggregations"/>) for
/// entities "e-0", "e-1", …: mostly in order, some late, so that windows, lateness and re-anchoring all
/// take part. The snapshot tests and the GPU check's checkpoint round trip use them.
/// </summary>
public static class MixedBatches
{
    public static ArrayBatch Next(Random random, FeaturePlan plan, int entities, int maxRows, ref long now)
    {
        int n = random.Next(1, maxRows + 1);
        var keys = new ulong[n];
        var times = new long[n];
        var numeric = Enumerable.Range(0, plan.NumericFields.Count).Select(_ => new float[n]).ToArray();
        var keyColumns = Enumerable.Range(0, plan.KeyFields.Count).Select(_ => new ulong[n]).ToArray();
        for (int i = 0; i < n; i++)
        {
            keys[i] = EntityKey.Hash($"e-{random.Next(entities)}");
            times[i] = now + random.Next(-120_000, 2_000);
            foreach (var column in numeric)
            {
                column[i] = (float)Math.Round(random.NextDouble() * 100, 2);
            }
            foreach (var column in keyColumns)
            {
                column[i] = EntityKey.Hash($"k-{random.Next(50)}");
            }
        }
        now += 30_000;
        return new ArrayBatch(keys, times, numeric, keyColumns);
    }

    /// <summary>Every feature of entities "e-0".. as of <paramref name="now"/>, row-major.</summary>
    public static float[] Read(FeatureTable table, FeaturePlan plan, int entities, long now)
    {
        var keys = Enumerable.Range(0, entities).Select(e => EntityKey.Hash($"e-{e}")).ToArray();
        var output = new float[keys.Length * plan.Count];
        table.Gather(keys, now, output);
        return output;
    }
}

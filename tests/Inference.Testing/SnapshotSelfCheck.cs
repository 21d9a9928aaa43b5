using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Testing;

/// <summary>
/// What checkpoints rest on, on one accelerator: a table's state copied to the host and restored into a
/// fresh table on the same accelerator and on the CPU backend (a checkpoint taken on a GPU node restored
/// on another kind of node) reads the same and goes on applying like the original; a pool's handoff drops
/// partitions and takes them back exactly. One body for the kernel tests and the GPU check
/// (bench/Inference.KernelCheck), so the check that runs on CUDA is the one CI runs on the CPU.
/// </summary>
public static class SnapshotSelfCheck
{
    private const int Entities = 2_000;

    /// <summary>Mismatches found (empty: passed) and the entities compared.</summary>
    public static (List<string> Mismatches, int Entities) Run(DeviceContext device, int seed)
    {
        var plan = new FeaturePlan(FeatureSelfCheck.AllAggregations());
        var options = new FeatureTableOptions { InitialCapacity = 64, MaxCapacity = 4_096, MaxBatchEvents = 512, MaxGatherRows = Entities };
        using var original = new FeatureTable(device, plan, options);
        using var sameKind = new FeatureTable(device, plan, options);
        using var cpu = DeviceContext.Create(AcceleratorKind.Cpu);
        using var onCpu = new FeatureTable(cpu, plan, options);
        var random = new Random(seed);
        long now = FeatureSelfCheck.Start;
        for (int b = 0; b < 40; b++)
        {
            original.Apply(NextBatch(random, plan, ref now));
        }
        var snapshot = original.Snapshot();
        sameKind.Restore(snapshot);
        onCpu.Restore(snapshot);
        var mismatches = new List<string>();
        var expected = Read(original, plan, now);
        Compare("restored on the same accelerator", expected, Read(sameKind, plan, now), plan, mismatches);
        Compare("restored on the CPU backend", expected, Read(onCpu, plan, now), plan, mismatches);
        // A pool's handoff: two of six partitions dropped, then taken back from the snapshot (a table that grows to hold them).
        using (var handedOver = new FeatureTable(device, plan, options))
        {
            var moving = new HashSet<int> { 1, 4 };
            handedOver.Restore(snapshot.WithoutPartitions(moving, 6));
            handedOver.Restore(handedOver.Snapshot().WithEntitiesOf(snapshot, moving, 6));
            Compare("partitions dropped and taken back on the same accelerator", expected, Read(handedOver, plan, now), plan, mismatches);
        }
        if (original.Entities != sameKind.Entities || original.Entities != onCpu.Entities)
        {
            mismatches.Add($"entities held: original {original.Entities}, restored {sameKind.Entities}, on CPU {onCpu.Entities}");
        }
        for (int b = 0; b < 20; b++)
        {
            var batch = NextBatch(random, plan, ref now);
            original.Apply(batch);
            sameKind.Apply(batch);
            onCpu.Apply(batch);
        }
        expected = Read(original, plan, now);
        Compare("restored then applied on the same accelerator", expected, Read(sameKind, plan, now), plan, mismatches);
        Compare("restored then applied on the CPU backend", expected, Read(onCpu, plan, now), plan, mismatches);
        var again = sameKind.Snapshot();
        if (again.Entities != original.Entities)
        {
            mismatches.Add($"a second snapshot holds {again.Entities} entities, the original {original.Entities}");
        }
        return (mismatches, original.Entities);
    }

    private static void Compare(string what, float[] expected, float[] actual, FeaturePlan plan, List<string> mismatches)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            float e = expected[i];
            float a = actual[i];
            // The restored state is the same bits; reads and later applies on another backend may round
            // the last bits differently (transcendentals, atomic sum order).
            bool same = e.Equals(a) || Math.Abs(e - a) <= 1e-5 * Math.Max(1, Math.Abs(e));
            if (!same && mismatches.Count < 20)
            {
                mismatches.Add($"{what}: entity {i / plan.Count}, feature {plan.Definitions[i % plan.Count].Name}: {a} instead of {e}");
            }
        }
    }

    private static float[] Read(FeatureTable table, FeaturePlan plan, long now) => MixedBatches.Read(table, plan, Entities, now);

    private static ArrayBatch NextBatch(Random random, FeaturePlan plan, ref long now) => MixedBatches.Next(random, plan, Entities, 512, ref now);
}

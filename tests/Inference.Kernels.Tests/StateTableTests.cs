using Inference.Kernels.Accelerators;
using Inference.Kernels.State;

namespace Inference.Kernels.Tests;

public sealed class StateTableTests
{
    private const double HalfLifeMs = 60_000;

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Aggregates_match_the_reference_whatever_the_arrival_order(AcceleratorKind kind)
    {
        const int seed = 20261126;
        const int fields = 3, entities = 200, events = 20_000, batch = 1_000;
        var random = new Random(seed);
        var slots = new int[events];
        var times = new long[events];
        var values = new float[events][];
        var reference = new FeatureOracle(fields);
        for (int i = 0; i < events; i++)
        {
            // Skewed keys: a few entities get most events, so batches hold many events per slot.
            slots[i] = (int)(entities * Math.Pow(random.NextDouble(), 3));
            times[i] = 1_700_000_000_000 + random.NextInt64(0, 3_600_000);
            // Two decimal places, as a JSON producer would send them.
            values[i] = [.. Enumerable.Range(0, fields).Select(_ => (float)Math.Round(random.NextDouble() * 1000, 2))];
            reference.Add(slots[i], times[i], values[i]);
        }
        // Arrival order is a shuffle of event-time order.
        var order = Enumerable.Range(0, events).OrderBy(_ => random.Next()).ToArray();

        using var device = DeviceContext.Create(kind);
        using var table = new StateTable(device, capacity: entities, fieldCount: fields, HalfLifeMs, maxBatchEvents: batch);
        for (int start = 0; start < events; start += batch)
        {
            var chunk = order.AsSpan(start, batch).ToArray();
            var batchSlots = chunk.Select(i => slots[i]).ToArray();
            var batchTimes = chunk.Select(i => times[i]).ToArray();
            var batchValues = new float[fields * batch];
            for (int f = 0; f < fields; f++)
            {
                for (int j = 0; j < batch; j++)
                {
                    batchValues[f * batch + j] = values[chunk[j]][f];
                }
            }
            table.Apply(batchSlots, batchTimes, batchValues, batchSlots.Distinct().ToArray());
        }

        foreach (int slot in reference.Slots)
        {
            var state = table.Read(slot);
            Assert.True(reference.Count(slot) == state.Count, $"seed {seed}: slot {slot} count {state.Count}, expected {reference.Count(slot)}");
            Assert.Equal(reference.MaxTime(slot), state.MaxEventTimeMs);
            for (int f = 0; f < fields; f++)
            {
                Assert.True(reference.Sum(slot, f) == state.Sums[f], $"seed {seed}: slot {slot} field {f} sum {state.Sums[f]:R}, expected {reference.Sum(slot, f):R}");
                double expected = reference.DecayedSum(slot, f, HalfLifeMs);
                Assert.True(Math.Abs(state.DecayedSums[f] - expected) <= 1e-5 * Math.Abs(expected),
                    $"seed {seed}: slot {slot} field {f} decayed {state.DecayedSums[f]:R}, expected {expected:R}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Accelerators.Available), MemberType = typeof(Accelerators))]
    public void Gather_writes_model_inputs_and_empty_rows_for_unknown_entities(AcceleratorKind kind)
    {
        using var device = DeviceContext.Create(kind);
        using var table = new StateTable(device, capacity: 4, fieldCount: 1, HalfLifeMs, maxBatchEvents: 8);
        // Slot 2: values 3 and 5, one half-life apart.
        table.Apply([2, 2], [1_000, 61_000], [3f, 5f], [2]);

        var output = new float[3 * table.FeatureWidth];
        table.Gather([2, -1, 0], nowMs: 121_000, output);

        double mean = 4, decayedAtNow = (5 + 3 * 0.5) * 0.5;
        Assert.Equal((float)Math.Log(3), output[0], 5);
        Assert.Equal((float)Math.Log(1 + mean), output[1], 5);
        Assert.Equal((float)Math.Log(1 + decayedAtNow), output[2], 5);
        Assert.All(output[3..], v => Assert.Equal(0f, v));
    }

    [Fact]
    public void A_slot_outside_the_table_is_refused_on_the_host()
    {
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var table = new StateTable(device, capacity: 4, fieldCount: 1, HalfLifeMs, maxBatchEvents: 8);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => table.Apply([4], [1], [1f], [4]));
        Assert.Contains("capacity 4", error.Message);
    }

    [Fact]
    public void The_slot_map_hands_out_slots_until_full()
    {
        var map = new EntitySlotMap(capacity: 2);
        Assert.Equal(0, map.GetOrAdd(EntityKey.Hash("a")));
        Assert.Equal(1, map.GetOrAdd(EntityKey.Hash("b")));
        Assert.Equal(0, map.GetOrAdd(EntityKey.Hash("a")));
        Assert.Equal(-1, map.GetOrAdd(EntityKey.Hash("c")));
        Assert.Equal(-1, map.Find(EntityKey.Hash("c")));
        Assert.Equal(2, map.Count);
    }
}

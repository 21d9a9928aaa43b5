using System.Runtime.InteropServices;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Testing;

namespace Inference.Kernels.Tests;

/// <summary>
/// The CPU backend reads a batch in native memory in place (<see cref="IBatchColumns.PinnedStride"/>);
/// every aggregation must come out exactly as from the same batch copied from arrays.
/// </summary>
public sealed unsafe class InPlaceBatchTests
{
    [Theory]
    [InlineData(512)]
    [InlineData((3 * FeatureTable.HostSliceEvents) + 101)] // applied a slice at a time, read in place at the batch's stride
    public void A_batch_read_in_place_gives_exactly_what_the_copied_batch_gives(int capacity)
    {
        const int Entities = 200, Seed = 31;
        var plan = new FeaturePlan(FeatureSelfCheck.AllAggregations());
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        // Room for a whole batch of new keys, so that large batches are sliced rather than making room.
        var options = new FeatureTableOptions { InitialCapacity = 2 * capacity, MaxCapacity = 2 * capacity, MaxBatchEvents = capacity };
        using var copied = new FeatureTable(device, plan, options);
        using var inPlace = new FeatureTable(device, plan, options);
        int numeric = plan.NumericFields.Count, keys = plan.KeyFields.Count;
        var times = (long*)NativeMemory.AlignedAlloc((nuint)(capacity * sizeof(long)), 64);
        var values = (float*)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, numeric) * capacity * sizeof(float)), 64);
        var keyColumns = (ulong*)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, keys) * capacity * sizeof(ulong)), 64);
        try
        {
            var random = new Random(Seed);
            long now = FeatureSelfCheck.Start;
            for (int b = 0; b < 30; b++)
            {
                int n = random.Next(1, capacity - 7);
                var entityArray = new ulong[n];
                var timeArray = new long[n];
                var numericArrays = Enumerable.Range(0, numeric).Select(_ => new float[n]).ToArray();
                var keyArrays = Enumerable.Range(0, keys).Select(_ => new ulong[n]).ToArray();
                for (int i = 0; i < n; i++)
                {
                    entityArray[i] = EntityKey.Hash($"e-{random.Next(Entities)}");
                    timeArray[i] = now + random.Next(-60_000, 5_000);
                    for (int c = 0; c < numeric; c++)
                    {
                        numericArrays[c][i] = (float)Math.Round(random.NextDouble() * 100, 2);
                    }
                    for (int c = 0; c < keys; c++)
                    {
                        keyArrays[c][i] = EntityKey.Hash($"k-{random.Next(40)}");
                    }
                    times[i] = timeArray[i];
                }
                for (int c = 0; c < numeric; c++)
                {
                    numericArrays[c].CopyTo(new Span<float>(values + c * capacity, n));
                }
                for (int c = 0; c < keys; c++)
                {
                    keyArrays[c].CopyTo(new Span<ulong>(keyColumns + c * capacity, n));
                }
                now += 2_000;
                var expected = copied.Apply(new ArrayBatch(entityArray, timeArray, numericArrays, keyArrays));
                long expectedNewest = expected.NewestTimeMs;
                var actual = inPlace.Apply(new NativeBatch(entityArray, times, values, keyColumns, n, capacity));
                Assert.Equal(expected.Applied, actual.Applied);
                Assert.Equal(expectedNewest, actual.NewestTimeMs);
            }
            var all = Enumerable.Range(0, Entities).Select(e => EntityKey.Hash($"e-{e}")).ToArray();
            var want = new float[all.Length * plan.Count];
            var got = new float[all.Length * plan.Count];
            copied.Gather(all, now, want);
            inPlace.Gather(all, now, got);
            Assert.Equal(want, got);
        }
        finally
        {
            NativeMemory.AlignedFree(times);
            NativeMemory.AlignedFree(values);
            NativeMemory.AlignedFree(keyColumns);
        }
    }

    /// <summary>Columns in native memory, field-major at <paramref name="stride"/> (entities from an array: they are uploaded).</summary>
    private readonly struct NativeBatch(ulong[] entities, long* times, float* values, ulong* keys, int count, int stride) : IBatchColumns
    {
        public int Count => count;

        public ReadOnlySpan<ulong> Entities => entities;

        public ReadOnlySpan<long> Times => new(times, count);

        public ReadOnlySpan<float> Numeric(int column) => new(values + column * stride, count);

        public ReadOnlySpan<ulong> Keys(int column) => new(keys + column * stride, count);

        public int PinnedStride => stride;
    }
}

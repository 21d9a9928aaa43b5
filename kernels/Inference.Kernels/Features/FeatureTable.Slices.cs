namespace Inference.Kernels.Features;

// On the CPU backend a large batch is applied as consecutive slices, each through every kernel before the
// next. A slice's slot rows (~750 bytes per entity of the default features) then stay in the core's own cache
// from the prefetch to the last kernel, where a whole batch's rows do not fit it and each kernel finds them in
// the shared cache again; and a slice runs on one thread, without waking and waiting for the others. Applying
// slices in stream order gives the state the whole batch gives: a slice's lateness is judged as the batch's
// (an event newer by more than the least lateness than an earlier one, in the slice or before it, turns on
// per-event priors, which include the slices before), decayed sums re-anchored slice by slice are the same
// sums, and no slice evicts: batches that must make room are applied whole.
public sealed partial class FeatureTable
{
    /// <summary>
    /// Events per slice on the CPU backend (within one host worker's share: one thread runs it). A slice's rows of
    /// the default features (~380 KB) fit a core's 1 MB L2 with the batch's columns beside them; 2,048 events'
    /// (~1.5 MB) did not: the device thread's CPU per 1M events fell by about 14% (docs/benchmarks.md).
    /// </summary>
    internal const int HostSliceEvents = 512;

    private long[]? _slicesLate;

    /// <summary>Whether a batch of <paramref name="n"/> events is applied in slices.</summary>
    private bool AppliesInSlices(int n) => _device.IsHost && n > HostSliceEvents && _free >= n;

    private ApplyResult ApplyInSlices<TBatch>(in TBatch batch)
        where TBatch : IBatchColumns, allows ref struct
    {
        var late = _slicesLate ??= new long[Plan.Count];
        System.Array.Clear(late);
        int applied = 0, dropped = 0;
        long newest = 0;
        for (int start = 0; start < batch.Count; start += HostSliceEvents)
        {
            var slice = new BatchSlice<TBatch>(batch, start, Math.Min(HostSliceEvents, batch.Count - start));
            var result = Apply(slice);
            applied += result.Applied;
            dropped += result.Dropped;
            newest = Math.Max(newest, result.NewestTimeMs);
            for (int f = 0; f < late.Length; f++)
            {
                late[f] += result.Late[f];
            }
        }
        return new ApplyResult(applied, dropped, late, [], newest);
    }

    /// <summary>Events [start, start + count) of a batch, its columns sliced in place (a pinned batch stays pinned, at the same stride).</summary>
    private readonly ref struct BatchSlice<TBatch>(in TBatch batch, int start, int count) : IBatchColumns
        where TBatch : IBatchColumns, allows ref struct
    {
        private readonly TBatch _batch = batch;

        public int Count => count;

        public ReadOnlySpan<ulong> Entities => _batch.Entities.Slice(start, count);

        public ReadOnlySpan<long> Times => _batch.Times.Slice(start, count);

        public ReadOnlySpan<float> Numeric(int column) => _batch.Numeric(column).Slice(start, count);

        public ReadOnlySpan<ulong> Keys(int column) => _batch.Keys(column).Slice(start, count);

        public int PinnedStride => _batch.PinnedStride;
    }
}

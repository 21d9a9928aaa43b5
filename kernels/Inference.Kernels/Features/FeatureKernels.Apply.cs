using ILGPU;
using ILGPU.Algorithms;

namespace Inference.Kernels.Features;

/// <summary>The feature kernels that apply a batch to the slots it touches: newest times and lateness, re-anchoring, and each event's update.</summary>
internal static partial class FeatureKernels
{
    /// <summary>Per event and windowed feature: count late events; raise the pending epoch of the event's ring bucket.</summary>
    public static void AdvanceWindows(Index1D thread, int stride, BatchView batch, SlotView slots, PlanView plan)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            int slot = batch.Slot[i];
            if (slot < 0)
            {
                continue;
            }
            long time = batch.Times[i];
            long newest = batch.ExactLateness != 0 ? batch.Prior[i] : slots.Heads[slot].MaxTime;
            for (int f = 0; f < plan.Features; f++)
            {
                ref FeatureDescriptor feature = ref plan.Descriptors[f];
                int kind = feature.Kind;
                if (!IsWindow(kind))
                {
                    continue;
                }
                long lateness = (long)feature.Lateness;
                if (time < newest - lateness)
                {
                    Atomic.Add(ref batch.Late[f], 1L);
                    continue;
                }
                int ring = feature.Size;
                long epoch = EpochOf(time, (long)feature.BucketWidth);
                long pending = (long)slot * plan.LongStride + feature.LongOffset + ring + BucketOf(epoch, ring);
                Atomic.Max(ref slots.Longs[pending], epoch);
            }
        }
    }

    /// <summary>Per slot several events of the batch share (once, by its first event): <see cref="ReanchorSlot"/> before any of them accumulates.</summary>
    public static void Reanchor(Index1D thread, int stride, BatchView batch, SlotView slots, PlanView plan)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            // Slots with one event are re-anchored by that event in Accumulate, while it has the line.
            if (batch.Touched[i] != 0 && batch.Shared[i] != 0)
            {
                ReanchorSlot(batch.Slot[i], slots, plan, 0, 0L);
            }
        }
    }

    /// <summary>
    /// Moves a slot's decayed sums to its newest time, resets "last", clears ring buckets that moved on.
    /// <paramref name="alone"/> (nonzero): the slot's only event of the batch, at <paramref name="time"/>, is the
    /// only one that raised a pending epoch (<see cref="AdvanceWindows"/>), in its own bucket, so only that
    /// bucket can have moved on: every apply leaves each bucket's pending epoch at most its epoch.
    /// </summary>
    private static void ReanchorSlot(int slot, SlotView slots, PlanView plan, int alone, long time)
    {
        long newest = slots.Heads[slot].MaxTime;
        long anchor = slots.Heads[slot].Anchor;
        long doubles = (long)slot * plan.DoubleStride;
        long longs = (long)slot * plan.LongStride;
        for (int f = 0; f < plan.StateFeatures; f++)
        {
            ref FeatureDescriptor feature = ref plan.Descriptors[f];
            int kind = feature.Kind;
            long d = doubles + feature.DoubleOffset;
            if (kind == (int)Aggregation.DecayedSum || kind == (int)Aggregation.DecayedMean)
            {
                if (newest > anchor)
                {
                    double factor = Math.Exp(-(newest - anchor) * feature.DecayRate);
                    slots.Doubles[d] *= factor;
                    if (kind == (int)Aggregation.DecayedMean)
                    {
                        slots.Doubles[d + 1] *= factor;
                    }
                }
            }
            else if (kind == (int)Aggregation.Last)
            {
                if (newest > anchor)
                {
                    slots.Doubles[d] = double.NegativeInfinity;
                }
            }
            else if (kind == FeaturePlan.LastKeyKind)
            {
                if (newest > anchor)
                {
                    slots.Longs[longs + feature.LongOffset] = long.MinValue;
                }
            }
            else if (IsWindow(kind))
            {
                int ring = feature.Size;
                long l = longs + feature.LongOffset;
                int first = alone != 0 ? BucketOf(EpochOf(time, (long)feature.BucketWidth), ring) : 0;
                int last = alone != 0 ? first + 1 : ring;
                for (int b = first; b < last; b++)
                {
                    long pending = slots.Longs[l + ring + b];
                    if (pending > slots.Longs[l + b])
                    {
                        slots.Longs[l + b] = pending;
                        slots.Doubles[d + 2 * b] = 0;
                        slots.Doubles[d + 2 * b + 1] = 0;
                    }
                }
            }
        }
        slots.Heads[slot].Anchor = newest;
    }

    /// <summary>Per event: apply it to every feature of its slot (its count went up in <see cref="ResolveSlots"/>).</summary>
    public static void Accumulate(Index1D thread, int stride, BatchView batch, SlotView slots, PlanView plan)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            int slot = batch.Slot[i];
            if (slot < 0)
            {
                continue;
            }
            long time = batch.Times[i];
            // The slot's only event in the batch: nothing else writes its state, so it re-anchors the slot
            // itself and updates with plain writes instead of atomics.
            bool alone = batch.Touched[i] != 0 && batch.Shared[i] == 0;
            long anchor = 0;
            if (plan.ReadsAnchor != 0)
            {
                if (alone)
                {
                    ReanchorSlot(slot, slots, plan, 1, time);
                }
                // Only decayed, last and windowed features read the anchor: sums and extremes leave the header alone.
                anchor = slots.Heads[slot].Anchor;
            }
            long doubles = (long)slot * plan.DoubleStride;
            for (int f = 0; f < plan.StateFeatures; f++)
            {
                ref FeatureDescriptor feature = ref plan.Descriptors[f];
                int kind = feature.Kind;
                int numeric = feature.Numeric;
                long d = doubles + feature.DoubleOffset;
                double value = numeric >= 0 ? batch.Numeric[numeric * batch.ColumnStride + i] : 0.0;
                if (kind == (int)Aggregation.Sum || kind == (int)Aggregation.Mean)
                {
                    Add(ref slots.Doubles[d], value, alone);
                }
                else if (kind == (int)Aggregation.Min)
                {
                    Min(ref slots.Doubles[d], value, alone);
                }
                else if (kind == (int)Aggregation.Max)
                {
                    Max(ref slots.Doubles[d], value, alone);
                }
                else if (kind == (int)Aggregation.Last)
                {
                    if (time == anchor)
                    {
                        Max(ref slots.Doubles[d], value, alone);
                    }
                }
                else if (kind == (int)Aggregation.DecayedSum || kind == (int)Aggregation.DecayedMean)
                {
                    // Most events are their entity's newest: weight 1, no exponential.
                    double weight = time == anchor ? 1.0 : Math.Exp(-(anchor - time) * feature.DecayRate);
                    Add(ref slots.Doubles[d], value * weight, alone);
                    if (kind == (int)Aggregation.DecayedMean)
                    {
                        Add(ref slots.Doubles[d + 1], weight, alone);
                    }
                }
                else if (IsWindow(kind))
                {
                    long lateness = (long)feature.Lateness;
                    if (time < (batch.ExactLateness != 0 ? batch.Prior[i] : anchor) - lateness)
                    {
                        continue;
                    }
                    long epoch = EpochOf(time, (long)feature.BucketWidth);
                    int b = BucketOf(epoch, feature.Size);
                    if (slots.Longs[(long)slot * plan.LongStride + feature.LongOffset + b] == epoch)
                    {
                        Add(ref slots.Doubles[d + 2 * b], 1.0, alone);
                        Add(ref slots.Doubles[d + 2 * b + 1], value, alone);
                    }
                }
                else if (kind == FeaturePlan.LastKeyKind)
                {
                    // As Last: the key of the event with the newest time; ties take the larger key. Stored with its top
                    // bit flipped, so that signed order is the keys' order and long.MinValue is no key (0).
                    if (time == anchor)
                    {
                        long key = (long)(batch.KeyColumns[feature.Source * batch.ColumnStride + i] ^ FeaturePlan.LastKeyFlip);
                        long at = (long)slot * plan.LongStride + feature.LongOffset;
                        if (alone)
                        {
                            slots.Longs[at] = XMath.Max(slots.Longs[at], key);
                        }
                        else
                        {
                            Atomic.Max(ref slots.Longs[at], key);
                        }
                    }
                }
                else if (kind == (int)Aggregation.DistinctCount)
                {
                    int precision = feature.Size;
                    ulong hash = batch.KeyColumns[feature.Source * batch.ColumnStride + i];
                    Atomic.Max(ref slots.Registers[(long)slot * plan.IntStride + feature.IntOffset + RegisterOf(hash, precision)], RankOf(hash, precision));
                }
            }
        }
    }
}

using ILGPU;
using ILGPU.Algorithms;

namespace Inference.Kernels.Features;

/// <summary>The feature kernels that read: find a key's slot, and every feature's value of a slot as of a time.</summary>
internal static partial class FeatureKernels
{
    /// <summary>Per row: the key's slot, or -1 for an entity the table does not hold.</summary>
    public static void Lookup(Index1D thread, int stride, HashView hash, ReadView read)
    {
        for (int r = thread; r < read.Rows; r += stride)
        {
            read.Slots[r] = Find(read.Keys[r], hash);
        }
    }

    private static int Find(ulong key, HashView hash)
    {
        int bucket = Home(key, hash.Mask);
        for (int probe = 0; probe <= hash.Mask; probe++)
        {
            ulong current = hash.Entries[bucket].Key;
            if (current == key)
            {
                return hash.Entries[bucket].Slot;
            }
            if (current == 0)
            {
                return -1;
            }
            bucket = (bucket + 1) & hash.Mask;
        }
        return -1;
    }

    /// <summary>
    /// Per row: find the key's slot, then write every feature's value as of the read time into a dense
    /// [rows × features] matrix. One launch per read: on the CPU simulator a launch is the main cost.
    /// </summary>
    public static void Gather(Index1D thread, int stride, HashView hash, ReadView read, SlotView slots, PlanView plan)
    {
        for (int r = thread; r < read.Rows; r += stride)
        {
            int slot = Find(read.Keys[r], hash);
            long time = read.PerRowTime != 0 ? read.Times[r] : read.Now;
            bool known = slot >= 0 && slots.Heads[slot].Count > 0;
            int inexact = 0;
            for (int f = 0; f < plan.Features; f++)
            {
                ref FeatureDescriptor feature = ref plan.Descriptors[f];
                int kind = feature.Kind;
                double value;
                if (!known)
                {
                    value = feature.Default;
                }
                else if (kind == (int)Aggregation.Ratio)
                {
                    int numerator = feature.Source;
                    int denominator = feature.Denominator;
                    double bottom = Value(denominator, slot, time, slots, plan);
                    value = bottom == 0 ? feature.Default : Value(numerator, slot, time, slots, plan) / bottom;
                }
                else
                {
                    value = Value(f, slot, time, slots, plan);
                    if (!IsWindow(kind) && kind != (int)Aggregation.TimeSinceLast && time < slots.Heads[slot].MaxTime)
                    {
                        // Running aggregates cannot take back events newer than the read time.
                        inexact = 1;
                    }
                }
                if (read.ApplyTransform != 0 && feature.Transform == (int)FeatureTransform.SignedLog1p)
                {
                    value = value >= 0 ? XMath.Log(1.0 + value) : -XMath.Log(1.0 - value);
                }
                // State is double; a model input is float: a sum beyond float's range reads as its bound, not infinity.
                read.Output[(long)r * plan.Features + f] = (float)(value > float.MaxValue ? float.MaxValue : value < -float.MaxValue ? -float.MaxValue : value);
            }
            int lastKeys = plan.StateFeatures - plan.Features;
            for (int k = 0; k < lastKeys; k++)
            {
                ulong key = known ? (ulong)slots.Longs[(long)slot * plan.LongStride + plan.Descriptors[plan.Features + k].LongOffset] ^ FeaturePlan.LastKeyFlip : 0UL;
                read.LastKeys[(long)r * lastKeys + k] = key;
            }
            if (lastKeys > 0 && known && time < slots.Heads[slot].MaxTime)
            {
                // The newest key may be of an event after the read time.
                inexact = 1;
            }
            read.Inexact[r] = inexact;
        }
    }

    /// <summary>A non-ratio feature's value for a slot that has events, as of <paramref name="time"/>.</summary>
    private static double Value(int f, int slot, long time, SlotView slots, PlanView plan)
    {
        ref FeatureDescriptor feature = ref plan.Descriptors[f];
        int kind = feature.Kind;
        double fallback = feature.Default;
        long d = (long)slot * plan.DoubleStride + feature.DoubleOffset;
        long count = slots.Heads[slot].Count;
        if (kind == (int)Aggregation.Count)
        {
            return count;
        }
        if (kind == (int)Aggregation.Sum || kind == (int)Aggregation.Min || kind == (int)Aggregation.Max || kind == (int)Aggregation.Last)
        {
            double v = slots.Doubles[d];
            return XMath.IsInfinity(v) ? fallback : v;
        }
        if (kind == (int)Aggregation.Mean)
        {
            return slots.Doubles[d] / count;
        }
        if (kind == (int)Aggregation.TimeSinceLast)
        {
            long age = time - slots.Heads[slot].MaxTime;
            return age > 0 ? age : 0;
        }
        if (kind == (int)Aggregation.DecayedSum || kind == (int)Aggregation.DecayedMean)
        {
            long anchor = slots.Heads[slot].Anchor;
            double factor = time > anchor ? Math.Exp(-(time - anchor) * feature.DecayRate) : 1.0;
            if (kind == (int)Aggregation.DecayedSum)
            {
                return slots.Doubles[d] * factor;
            }
            double weight = slots.Doubles[d + 1];
            return weight > 0 ? slots.Doubles[d] / weight : fallback;
        }
        if (IsWindow(kind))
        {
            int ring = feature.Size;
            int buckets = feature.WindowBuckets;
            long l = (long)slot * plan.LongStride + feature.LongOffset;
            long newest = EpochOf(time, (long)feature.BucketWidth);
            double n = 0, total = 0;
            for (int b = 0; b < ring; b++)
            {
                long epoch = slots.Longs[l + b];
                if (InWindow(epoch, newest, buckets))
                {
                    n += slots.Doubles[d + 2 * b];
                    total += slots.Doubles[d + 2 * b + 1];
                }
            }
            if (kind == (int)Aggregation.WindowCount)
            {
                return n;
            }
            if (kind == (int)Aggregation.WindowSum)
            {
                return total;
            }
            return n > 0 ? total / n : fallback;
        }
        if (kind == (int)Aggregation.DistinctCount)
        {
            int precision = feature.Size;
            int m = 1 << precision;
            long registers = (long)slot * plan.IntStride + feature.IntOffset;
            double harmonic = 0;
            int zeros = 0;
            for (int j = 0; j < m; j++)
            {
                int rank = slots.Registers[registers + j];
                harmonic += XMath.Exp2(-(double)rank);
                if (rank == 0)
                {
                    zeros++;
                }
            }
            return DistinctEstimate(harmonic, zeros, m);
        }
        return fallback;
    }
}

using ILGPU;
using ILGPU.Algorithms;

namespace Inference.Kernels.State;

/// <summary>
/// The kernels that update and read the per-entity state table. All are grid-stride: a launch has a
/// fixed number of threads (<c>stride</c>) and each thread loops over elements, which on the CPU
/// simulator is ~100× cheaper than a thread per element and on CUDA keeps launches small.
/// </summary>
/// <remarks>
/// Layout: per slot <c>count</c>, <c>maxTime</c> (newest event time applied) and <c>anchor</c> (the
/// time the decayed sums are expressed at); per slot and field <c>sum</c> and <c>decayed</c> at index
/// <c>slot * fields + field</c>. Sums are doubles fed from float values: for event values with fewer
/// than ~29 significant bits of spread between the smallest and the total, every partial sum is exact,
/// so the result does not depend on the order the atomics run in.
/// </remarks>
internal static class FeatureKernels
{
    /// <summary>Pass 1 over events: the newest event time per touched slot.</summary>
    public static void RaiseMaxTime(
        Index1D thread, int stride, int count,
        ArrayView<int> slots, ArrayView<long> times, ArrayView<long> maxTime)
    {
        for (int i = thread; i < count; i += stride)
        {
            Atomic.Max(ref maxTime[slots[i]], times[i]);
        }
    }

    /// <summary>
    /// Pass 2 over the distinct touched slots: move each slot's decayed sums forward from its old
    /// anchor to its new newest event time, so pass 3 only ever decays by a non-positive exponent.
    /// </summary>
    public static void Reanchor(
        Index1D thread, int stride, int count, int fields, double inverseHalfLife,
        ArrayView<int> touched, ArrayView<long> maxTime, ArrayView<long> anchor, ArrayView<double> decayed)
    {
        for (int i = thread; i < count; i += stride)
        {
            int slot = touched[i];
            long newAnchor = maxTime[slot];
            long oldAnchor = anchor[slot];
            if (newAnchor == oldAnchor)
            {
                continue;
            }
            double factor = XMath.Exp2(-(newAnchor - oldAnchor) * inverseHalfLife);
            for (int f = 0; f < fields; f++)
            {
                decayed[slot * fields + f] *= factor;
            }
            anchor[slot] = newAnchor;
        }
    }

    /// <summary>Pass 3 over events: counts, sums and decayed sums, by atomics (many events may share a slot).</summary>
    public static void Accumulate(
        Index1D thread, int stride, int count, int fields, double inverseHalfLife,
        ArrayView<int> slots, ArrayView<long> times, ArrayView<float> values,
        ArrayView<long> eventCount, ArrayView<long> anchor, ArrayView<double> sum, ArrayView<double> decayed)
    {
        for (int i = thread; i < count; i += stride)
        {
            int slot = slots[i];
            Atomic.Add(ref eventCount[slot], 1L);
            double weight = XMath.Exp2(-(anchor[slot] - times[i]) * inverseHalfLife);
            for (int f = 0; f < fields; f++)
            {
                double value = values[f * count + i];
                Atomic.Add(ref sum[slot * fields + f], value);
                Atomic.Add(ref decayed[slot * fields + f], value * weight);
            }
        }
    }

    /// <summary>
    /// Writes one dense model-input row per requested slot: <c>log1p(count)</c>, then per field the
    /// signed log1p of the mean and of the decayed sum as of <c>now</c>. A negative slot is an
    /// unknown entity and gets an empty entity's row (all zeros).
    /// </summary>
    public static void Gather(
        Index1D thread, int stride, int rows, int fields, long now, double inverseHalfLife,
        ArrayView<int> slots, ArrayView<long> eventCount, ArrayView<long> anchor,
        ArrayView<double> sum, ArrayView<double> decayed, ArrayView<float> output)
    {
        int width = 1 + 2 * fields;
        for (int r = thread; r < rows; r += stride)
        {
            int slot = slots[r];
            int row = r * width;
            if (slot < 0 || eventCount[slot] == 0)
            {
                for (int c = 0; c < width; c++)
                {
                    output[row + c] = 0f;
                }
                continue;
            }
            long n = eventCount[slot];
            long age = now > anchor[slot] ? now - anchor[slot] : 0;
            double factor = XMath.Exp2(-age * inverseHalfLife);
            output[row] = (float)XMath.Log(1.0 + n);
            for (int f = 0; f < fields; f++)
            {
                output[row + 1 + 2 * f] = SignedLog1p(sum[slot * fields + f] / n);
                output[row + 2 + 2 * f] = SignedLog1p(decayed[slot * fields + f] * factor);
            }
        }
    }

    private static float SignedLog1p(double x) =>
        (float)(x >= 0 ? XMath.Log(1.0 + x) : -XMath.Log(1.0 - x));
}

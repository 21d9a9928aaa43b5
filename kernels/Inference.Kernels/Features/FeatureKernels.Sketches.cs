using ILGPU.Algorithms;

namespace Inference.Kernels.Features;

/// <summary>
/// The arithmetic of the two sketches a slot holds, named once: the window ring (time → epoch → bucket)
/// and HyperLogLog (hash → register and rank; registers → estimate).
/// </summary>
internal static partial class FeatureKernels
{
    /// <summary>The epoch a time falls in: buckets are <paramref name="width"/> ms wide, from time 0.</summary>
    private static long EpochOf(long time, long width) => time / width;

    /// <summary>The bucket of the ring of <paramref name="ring"/> buckets that holds an epoch.</summary>
    private static int BucketOf(long epoch, int ring) => (int)(epoch % ring);

    /// <summary>Whether an epoch a bucket holds is within the window of <paramref name="buckets"/> epochs that ends at <paramref name="newest"/>.</summary>
    private static bool InWindow(long epoch, long newest, int buckets) => epoch > newest - buckets && epoch <= newest;

    /// <summary>The HyperLogLog register of a hash: its top <paramref name="precision"/> bits.</summary>
    private static int RegisterOf(ulong hash, int precision) => (int)(hash >> (64 - precision));

    /// <summary>
    /// The rank of a hash: one more than the leading zeros of the bits below the register's; a guard bit caps
    /// it at 64 − p + 1 when they are all zero.
    /// </summary>
    private static int RankOf(ulong hash, int precision) => XMath.LeadingZeroCount((hash << precision) | (1UL << (precision - 1))) + 1;

    /// <summary>
    /// The distinct count 2^p registers estimate (the harmonic mean of 2^−rank, bias-corrected by α), by linear
    /// counting while registers are still empty, rounded to a whole number (small counts come out exact).
    /// </summary>
    private static double DistinctEstimate(double harmonic, int zeros, int m)
    {
        double alpha = m == 16 ? 0.673 : m == 32 ? 0.697 : m == 64 ? 0.709 : 0.7213 / (1.0 + 1.079 / m);
        double estimate = alpha * m * (double)m / harmonic;
        if (estimate <= 2.5 * m && zeros > 0)
        {
            estimate = m * XMath.Log((double)m / zeros);
        }
        return XMath.Floor(estimate + 0.5);
    }
}

using ILGPU;
using ILGPU.Algorithms;
using Inference.Kernels.Features;

namespace Inference.Kernels.Embeddings;

/// <summary>
/// The kernels of an embedding table, grid-stride like the feature kernels. A learning call runs
/// <see cref="Touch"/> (find or insert each id by compare-and-swap, count it, date it; an id that reaches
/// its minimum count claims a free row and draws its first values) → <see cref="Resolve"/> (each id's row,
/// the default row 0 for ids without one) → <see cref="Gather"/>; the gradient comes back through
/// <see cref="Step"/>, one thread per touched row and coordinate, summing the row's gradients in batch
/// order so the result does not depend on how threads interleave.
/// </summary>
internal static class EmbeddingKernels
{
    private const int Adagrad = (int)SparseOptimizerKind.Adagrad;

    public static void Touch(Index1D thread, int stride, IdHashView hash, IdBatchView batch, RowsView rows, OptimizerView optimizer)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            ulong key = batch.Keys[i];
            int bucket = FeatureKernels.Home(key, hash.Mask);
            for (int probe = 0; probe <= hash.Mask; probe++)
            {
                ulong current = hash.Entries[bucket].Key;
                if (current == key)
                {
                    break;
                }
                if (current == 0)
                {
                    ulong previous = Atomic.CompareExchange(ref hash.Entries[bucket].Key, 0UL, key);
                    if (previous == 0)
                    {
                        Atomic.Add(ref batch.Counters[0], 1);
                        break;
                    }
                    if (previous == key)
                    {
                        break;
                    }
                }
                bucket = (bucket + 1) & hash.Mask;
            }
            batch.Bucket[i] = bucket;
            Atomic.Max(ref hash.Entries[bucket].LastMs, batch.NowMs);
            int count = Atomic.Add(ref hash.Entries[bucket].Count, 1) + 1;
            if (count < batch.MinCount || hash.Entries[bucket].RowPlusOne != 0 || Atomic.CompareExchange(ref hash.Entries[bucket].RowPlusOne, 0, -1) != 0)
            {
                continue;
            }
            // The host made room for every id of the call before it: a pop always finds a row.
            int top = Atomic.Add(ref rows.FreeTop[0], -1) - 1;
            if (top < 0)
            {
                hash.Entries[bucket].RowPlusOne = 0;
                continue;
            }
            int row = rows.FreeList[top];
            InitialiseRow(row, key, rows, optimizer);
            hash.Entries[bucket].RowPlusOne = row + 1;
        }
    }

    /// <summary>Per id of a learning call (after <see cref="Touch"/>): its row, or the default row 0.</summary>
    public static void Resolve(Index1D thread, int stride, IdHashView hash, IdBatchView batch)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            batch.Rows[i] = XMath.Max(hash.Entries[batch.Bucket[i]].RowPlusOne - 1, 0);
        }
    }

    /// <summary>Per id of a read: its row without counting or dating it, or the default row 0.</summary>
    public static void Lookup(Index1D thread, int stride, IdHashView hash, IdBatchView batch)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            ulong key = batch.Keys[i];
            int bucket = FeatureKernels.Home(key, hash.Mask);
            int row = 0;
            for (int probe = 0; probe <= hash.Mask; probe++)
            {
                ulong current = hash.Entries[bucket].Key;
                if (current == key)
                {
                    row = XMath.Max(hash.Entries[bucket].RowPlusOne - 1, 0);
                    break;
                }
                if (current == 0)
                {
                    break;
                }
                bucket = (bucket + 1) & hash.Mask;
            }
            batch.Rows[i] = row;
        }
    }

    /// <summary>Per value of the output: row <c>Rows[i]</c>'s coordinate <c>d</c> at <c>i × D + d</c>.</summary>
    public static void Gather(Index1D thread, int stride, IdBatchView batch, RowsView rows)
    {
        long total = (long)batch.Count * rows.Dimension;
        for (long e = thread; e < total; e += stride)
        {
            long i = e / rows.Dimension;
            long d = e - i * rows.Dimension;
            batch.Output[e] = rows.Values[(long)batch.Rows[i] * rows.Dimension + d];
        }
    }

    /// <summary>Per touched row and coordinate: the sum of the row's gradients, then one optimizer step.</summary>
    public static void Step(Index1D thread, int stride, GradientView gradient, RowsView rows, OptimizerView optimizer)
    {
        int dimension = rows.Dimension;
        long total = (long)gradient.Unique * dimension;
        for (long e = thread; e < total; e += stride)
        {
            int u = (int)(e / dimension);
            int d = (int)(e - (long)u * dimension);
            float g = 0;
            for (int k = gradient.Offsets[u]; k < gradient.Offsets[u + 1]; k++)
            {
                g += gradient.Gradients[(long)gradient.Positions[k] * dimension + d];
            }
            long row = gradient.Rows[u];
            long at = row * dimension + d;
            long state = row * rows.StateWidth * dimension + d;
            if (optimizer.Kind == Adagrad)
            {
                float n = rows.State[state] + g * g;
                rows.State[state] = n;
                rows.Values[at] -= optimizer.LearningRate * g / (XMath.Sqrt(n) + SparseOptimizer.AdagradEpsilon);
            }
            else
            {
                float z = rows.State[state];
                float n = rows.State[state + dimension];
                float w = rows.Values[at];
                float next = n + g * g;
                float sigma = (XMath.Sqrt(next) - XMath.Sqrt(n)) / optimizer.LearningRate;
                z += g - sigma * w;
                rows.State[state] = z;
                rows.State[state + dimension] = next;
                rows.Values[at] = FtrlWeight(z, next, optimizer);
            }
        }
    }

    /// <summary>Per listed bucket: forget the id and free its row.</summary>
    public static void ForgetBuckets(Index1D thread, int stride, IdHashView hash, ForgetView forget, RowsView rows)
    {
        for (int i = thread; i < forget.Count; i += stride)
        {
            Forget(forget.Buckets[i], hash, forget, rows);
        }
    }

    /// <summary>Per bucket: forget an id not learned from since the cutoff, and free its row.</summary>
    public static void ForgetOlderThan(Index1D thread, int stride, IdHashView hash, ForgetView forget, RowsView rows)
    {
        for (int b = thread; b <= hash.Mask; b += stride)
        {
            ulong key = hash.Entries[b].Key;
            if (key != 0 && key != FeatureTable.Tombstone && hash.Entries[b].LastMs < forget.CutoffMs)
            {
                Forget(b, hash, forget, rows);
            }
        }
    }

    /// <summary>Per bucket of the old table: its live entry into the new one.</summary>
    public static void Rehash(Index1D thread, int stride, IdHashView from, IdHashView to)
    {
        for (int b = thread; b <= from.Mask; b += stride)
        {
            ulong key = from.Entries[b].Key;
            if (key == 0 || key == FeatureTable.Tombstone)
            {
                continue;
            }
            int bucket = FeatureKernels.Home(key, to.Mask);
            for (int probe = 0; probe <= to.Mask; probe++)
            {
                if (Atomic.CompareExchange(ref to.Entries[bucket].Key, 0UL, key) == 0)
                {
                    to.Entries[bucket].LastMs = from.Entries[b].LastMs;
                    to.Entries[bucket].Count = from.Entries[b].Count;
                    to.Entries[bucket].RowPlusOne = from.Entries[b].RowPlusOne;
                    break;
                }
                bucket = (bucket + 1) & to.Mask;
            }
        }
    }

    /// <summary>A row's first value at coordinate <paramref name="d"/>: uniform in [−scale, scale] by a hash of the id, the same on every node.</summary>
    public static float InitialValue(ulong key, int d, float scale)
    {
        ulong x = key + (ulong)(d + 1) * 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        x ^= x >> 31;
        float unit = (x >> 40) / 16777216f;
        return (2f * unit - 1f) * scale;
    }

    /// <summary>FTRL's closed form: the weight its z and n give.</summary>
    public static float FtrlWeight(float z, float n, OptimizerView optimizer)
    {
        if (XMath.Abs(z) <= optimizer.L1)
        {
            return 0f;
        }
        float sign = z < 0 ? -1f : 1f;
        return -(z - sign * optimizer.L1) / ((optimizer.Beta + XMath.Sqrt(n)) / optimizer.LearningRate + optimizer.L2);
    }

    /// <summary>FTRL's z for a row that starts at <paramref name="w"/> with accumulator <paramref name="n"/> (so the closed form gives <paramref name="w"/> back).</summary>
    public static float FtrlStartZ(float w, float n, OptimizerView optimizer)
    {
        float sign = w < 0 ? -1f : w > 0 ? 1f : 0f;
        return -w * ((optimizer.Beta + XMath.Sqrt(n)) / optimizer.LearningRate + optimizer.L2) - sign * optimizer.L1;
    }

    private static void InitialiseRow(int row, ulong key, RowsView rows, OptimizerView optimizer)
    {
        int dimension = rows.Dimension;
        for (int d = 0; d < dimension; d++)
        {
            float w = InitialValue(key, d, optimizer.InitScale);
            rows.Values[(long)row * dimension + d] = w;
            long state = (long)row * rows.StateWidth * dimension + d;
            if (optimizer.Kind == Adagrad)
            {
                rows.State[state] = optimizer.InitialAccumulator;
            }
            else
            {
                rows.State[state] = FtrlStartZ(w, optimizer.InitialAccumulator, optimizer);
                rows.State[state + dimension] = optimizer.InitialAccumulator;
            }
        }
    }

    private static void Forget(int bucket, IdHashView hash, ForgetView forget, RowsView rows)
    {
        int row = hash.Entries[bucket].RowPlusOne - 1;
        if (row > 0)
        {
            int top = Atomic.Add(ref rows.FreeTop[0], 1);
            rows.FreeList[top] = row;
            Atomic.Add(ref forget.Counters[1], 1);
        }
        hash.Entries[bucket].Key = FeatureTable.Tombstone;
        hash.Entries[bucket].RowPlusOne = 0;
        hash.Entries[bucket].Count = 0;
        hash.Entries[bucket].LastMs = 0;
        Atomic.Add(ref forget.Counters[0], 1);
    }
}

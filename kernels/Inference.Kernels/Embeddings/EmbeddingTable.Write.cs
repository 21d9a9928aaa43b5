namespace Inference.Kernels.Embeddings;

// Rows set from outside: what a pool's parameter server says a row holds (the initial values plus every
// worker's changes) replaces the row here.
public sealed partial class EmbeddingTable
{
    /// <summary>
    /// Sets the rows of <paramref name="ids"/> to <paramref name="values"/> (ids × <see cref="Dimension"/>), giving a
    /// row to each id that has none (counted up to <see cref="EmbeddingTableOptions.MinCount"/> and dated
    /// <paramref name="nowMs"/>). Id 0 is the shared default row. Each row's optimizer state stays as it is: under
    /// Adagrad only (FTRL derives a row's values from its state, which another node's values do not give).
    /// </summary>
    public void Write(ReadOnlySpan<ulong> ids, ReadOnlySpan<float> values, long nowMs)
    {
        if (values.Length != (long)ids.Length * _dimension)
        {
            throw new ArgumentException($"{ids.Length} rows need {ids.Length * _dimension} values (got {values.Length}).", nameof(values));
        }
        if (_options.Optimizer.Kind != SparseOptimizerKind.Adagrad)
        {
            throw new InvalidOperationException("Rows are set from outside under Adagrad only: FTRL derives a row's values from its state.");
        }
        int minCount = _options.MinCount;
        var known = new List<(ulong Id, int At)>(ids.Length);
        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] == 0)
            {
                Upload(_values, values.Slice(i * _dimension, _dimension));
            }
            else
            {
                known.Add((ids[i], i));
            }
        }
        int chunk = Math.Max(1, _options.MaxBatchIds / minCount);
        var repeated = new ulong[Math.Min(chunk, known.Count) * minCount];
        var touched = new int[repeated.Length];
        var part = new ulong[Math.Min(chunk, known.Count)];
        var rows = new int[part.Length];
        for (int start = 0; start < known.Count; start += chunk)
        {
            int count = Math.Min(chunk, known.Count - start);
            // Each id enough times in one call that it holds a row after it.
            for (int i = 0; i < count; i++)
            {
                part[i] = known[start + i].Id;
                repeated.AsSpan(i * minCount, minCount).Fill(part[i]);
            }
            Touch(repeated.AsSpan(0, count * minCount), nowMs, touched.AsSpan(0, count * minCount));
            Lookup(part.AsSpan(0, count), rows.AsSpan(0, count));
            for (int i = 0; i < count; i++)
            {
                Upload(_values, values.Slice(known[start + i].At * _dimension, _dimension), (long)rows[i] * _dimension);
            }
        }
    }
}

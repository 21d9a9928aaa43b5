namespace Inference.Engine.Sync;

/// <summary>Rows of one id input's embedding table: their 64-bit keys (0: the shared default row) and values, row after row.</summary>
internal sealed record RowBlock(string Input, int Dimension, ulong[] Keys, float[] Values)
{
    /// <summary>The first problem with the block's shape or values, or null.</summary>
    public string? Problem() =>
        string.IsNullOrEmpty(Input) ? "an embedding rows block names no id input"
        : Dimension <= 0 || Values.Length != (long)Keys.Length * Dimension ? $"the rows of '{Input}' hold {Values.Length} values for {Keys.Length} keys of dimension {Dimension}"
        : Values.Any(v => !float.IsFinite(v)) ? $"the rows of '{Input}' are not finite"
        : null;
}

/// <summary>
/// A parameter shard's embedding rows (a pool's models over ids): per id input and key, the sum of every change
/// pushed for the row (its offset from its initial values, which the workers draw from a hash of the key and add
/// back) and the shard version that last changed it. Rows merge by sum: a row is touched by few workers, and a
/// mean would shrink the changes of the rows one worker owns. Not thread-safe: the shard's lock guards it.
/// </summary>
internal sealed class RowStore
{
    private readonly Dictionary<string, Input> _inputs = new(StringComparer.Ordinal);

    public int Rows => _inputs.Values.Sum(i => i.Rows.Count);

    /// <summary>Refuses blocks of a bad shape, non-finite values or another dimension than the store's, before anything changes.</summary>
    public void Check(IReadOnlyList<RowBlock> blocks)
    {
        foreach (var block in blocks)
        {
            if (block.Problem() is { } problem)
            {
                throw new InvalidParametersException(problem.Contains("finite", StringComparison.Ordinal) ? "not_finite" : "shape", $"{char.ToUpperInvariant(problem[0])}{problem[1..]}.");
            }
            if (_inputs.TryGetValue(block.Input, out var input) && input.Dimension != block.Dimension)
            {
                throw new InvalidParametersException("shape", $"The rows of '{block.Input}' have dimension {block.Dimension}; the shard holds them at {input.Dimension}.");
            }
        }
    }

    /// <summary>Adds each row's change at <paramref name="version"/>.</summary>
    public void Add(IReadOnlyList<RowBlock> changes, long version)
    {
        foreach (var block in changes)
        {
            var input = For(block);
            for (int k = 0; k < block.Keys.Length; k++)
            {
                var values = block.Values.AsSpan(k * block.Dimension, block.Dimension);
                if (input.Rows.TryGetValue(block.Keys[k], out var row))
                {
                    for (int d = 0; d < values.Length; d++)
                    {
                        row.Offset[d] += values[d];
                    }
                    row.Version = version;
                }
                else
                {
                    input.Rows[block.Keys[k]] = new Row(values.ToArray(), version);
                }
            }
        }
    }

    /// <summary>Takes rows where the store holds none for their key yet (a restarted shard seeded again); the others stay.</summary>
    public void Seed(IReadOnlyList<RowBlock> rows, long version)
    {
        foreach (var block in rows)
        {
            var input = For(block);
            for (int k = 0; k < block.Keys.Length; k++)
            {
                input.Rows.TryAdd(block.Keys[k], new Row(block.Values.AsSpan(k * block.Dimension, block.Dimension).ToArray(), version));
            }
        }
    }

    /// <summary>The rows changed after <paramref name="version"/>, one block per id input.</summary>
    public IReadOnlyList<RowBlock> Since(long version)
    {
        var blocks = new List<RowBlock>();
        foreach (var (name, input) in _inputs)
        {
            var keys = new List<ulong>();
            var values = new List<float>();
            foreach (var (key, row) in input.Rows)
            {
                if (row.Version > version)
                {
                    keys.Add(key);
                    values.AddRange(row.Offset);
                }
            }
            if (keys.Count > 0)
            {
                blocks.Add(new RowBlock(name, input.Dimension, [.. keys], [.. values]));
            }
        }
        return blocks;
    }

    /// <summary>Every row, as of a restored checkpoint taken at <paramref name="version"/>.</summary>
    public void Restore(IReadOnlyList<RowBlock>? rows, long version)
    {
        _inputs.Clear();
        Seed(rows ?? [], version);
    }

    private Input For(RowBlock block)
    {
        if (!_inputs.TryGetValue(block.Input, out var input))
        {
            _inputs[block.Input] = input = new Input(block.Dimension);
        }
        if (input.Dimension != block.Dimension)
        {
            throw new InvalidParametersException("shape", $"The rows of '{block.Input}' have dimension {block.Dimension}; the shard holds them at {input.Dimension}.");
        }
        return input;
    }

    private sealed class Input(int dimension)
    {
        public int Dimension { get; } = dimension;

        public Dictionary<ulong, Row> Rows { get; } = [];
    }

    private sealed class Row(float[] offset, long version)
    {
        public float[] Offset { get; } = offset;

        public long Version { get; set; } = version;
    }
}

using Inference.Kernels.Embeddings;
using Inference.Kernels.Features;

namespace Inference.Testing;

/// <summary>
/// An embedding table as a plain dictionary of ids, with the same rules as <see cref="EmbeddingTable"/>
/// (minimum count, growth by doubling, forgetting the idlest ids that are not in the call, the limit on
/// ids without a row, the TTL) and the sparse optimizers written out in plain C#: what the table must
/// hold after any sequence of calls.
/// </summary>
public sealed class EmbeddingOracle
{
    private readonly EmbeddingTableOptions _options;
    private readonly Dictionary<ulong, Id> _ids = [];
    private readonly float[] _defaultValues;
    private readonly float[] _defaultState;

    public EmbeddingOracle(EmbeddingTableOptions options)
    {
        _options = options;
        Capacity = options.InitialCapacity;
        int d = options.Dimension;
        _defaultValues = new float[d];
        _defaultState = new float[options.Optimizer.StateWidth * d];
        _defaultState.AsSpan((options.Optimizer.StateWidth - 1) * d).Fill(options.Optimizer.InitialAccumulator);
    }

    /// <summary>Rows the table has (it may change on a restore: set it from the table then).</summary>
    public int Capacity { get; set; }

    public int Ids => _ids.Count;

    public int Rows { get; private set; }

    /// <summary>Learns the ids' counts and times; ids reaching the minimum count get a row.</summary>
    public void Touch(ReadOnlySpan<ulong> ids, long nowMs)
    {
        var keys = ids.ToArray().Select(FeatureTable.TableKey).ToArray();
        MakeRoom(keys);
        foreach (ulong key in keys)
        {
            if (!_ids.TryGetValue(key, out var id))
            {
                _ids[key] = id = new Id();
            }
            id.Count++;
            id.LastMs = Math.Max(id.LastMs, nowMs);
        }
        foreach (ulong key in keys)
        {
            var id = _ids[key];
            if (id.Values is null && id.Count >= _options.MinCount)
            {
                Admit(key, id);
            }
        }
    }

    /// <summary>The values an id reads (its row's, or the default row's).</summary>
    public float[] Read(ulong id) => (_ids.GetValueOrDefault(FeatureTable.TableKey(id))?.Values ?? _defaultValues).ToArray();

    /// <summary>The id's count, last time and whether it has a row; null when the table does not know it.</summary>
    public (int Count, long LastMs, bool HasRow)? State(ulong id) =>
        _ids.TryGetValue(FeatureTable.TableKey(id), out var s) ? (s.Count, s.LastMs, s.Values is not null) : null;

    /// <summary>One optimizer step: each id's gradient (ids × dimension), summed per row in position order.</summary>
    public void Step(ReadOnlySpan<ulong> ids, ReadOnlySpan<float> gradients)
    {
        int d = _options.Dimension;
        var groups = new Dictionary<ulong, float[]>();
        var order = new List<ulong>();
        for (int i = 0; i < ids.Length; i++)
        {
            ulong key = FeatureTable.TableKey(ids[i]);
            // Ids without a row share the default row: one group, keyed 0.
            ulong group = _ids.GetValueOrDefault(key)?.Values is not null ? key : 0;
            if (!groups.TryGetValue(group, out var sum))
            {
                groups[group] = sum = new float[d];
                order.Add(group);
            }
            for (int c = 0; c < d; c++)
            {
                sum[c] += gradients[i * d + c];
            }
        }
        foreach (ulong group in order)
        {
            var (values, state) = group == 0 ? (_defaultValues, _defaultState) : (_ids[group].Values!, _ids[group].State!);
            for (int c = 0; c < d; c++)
            {
                Update(ref values[c], state, c, groups[group][c]);
            }
        }
    }

    /// <summary>Forgets the ids not learned from since the cutoff.</summary>
    public int ForgetOlderThan(long cutoffMs)
    {
        var old = _ids.Where(p => p.Value.LastMs < cutoffMs).Select(p => p.Key).ToList();
        old.ForEach(Forget);
        return old.Count;
    }

    /// <summary>Whether a snapshot holds exactly the oracle's ids, counts, times and values (the first difference, or null).</summary>
    public string? Differs(EmbeddingSnapshot snapshot, float tolerance)
    {
        if (snapshot.Keys.Length != _ids.Count)
        {
            return $"the snapshot holds {snapshot.Keys.Length} ids, the oracle {_ids.Count}";
        }
        int d = _options.Dimension;
        for (int i = 0; i < snapshot.Keys.Length; i++)
        {
            if (!_ids.TryGetValue(snapshot.Keys[i], out var id))
            {
                return $"the snapshot holds id {snapshot.Keys[i]:x}, which the oracle does not";
            }
            if (id.Count != snapshot.Counts[i] || id.LastMs != snapshot.LastMs[i] || (id.Values is not null) != (snapshot.Rows[i] > 0))
            {
                return $"id {snapshot.Keys[i]:x}: count {snapshot.Counts[i]}, last {snapshot.LastMs[i]}, row {snapshot.Rows[i]}; the oracle: {id.Count}, {id.LastMs}, {(id.Values is null ? "none" : "a row")}";
            }
            var values = id.Values ?? _defaultValues;
            for (int c = 0; c < d; c++)
            {
                float actual = snapshot.Values[snapshot.Rows[i] * d + c];
                if (Math.Abs(actual - values[c]) > tolerance * Math.Max(1, Math.Abs(values[c])))
                {
                    return $"id {snapshot.Keys[i]:x}, coordinate {c}: {actual} in the snapshot, {values[c]} in the oracle";
                }
            }
        }
        return null;
    }

    private void Update(ref float w, float[] state, int c, float g)
    {
        var o = _options.Optimizer;
        int d = _options.Dimension;
        if (o.Kind == SparseOptimizerKind.Adagrad)
        {
            state[c] += g * g;
            w -= o.LearningRate * g / (MathF.Sqrt(state[c]) + SparseOptimizer.AdagradEpsilon);
            return;
        }
        // FTRL-Proximal, per coordinate: z then n.
        float n = state[d + c];
        float next = n + g * g;
        float sigma = (MathF.Sqrt(next) - MathF.Sqrt(n)) / o.LearningRate;
        state[c] += g - sigma * w;
        state[d + c] = next;
        float z = state[c];
        w = Math.Abs(z) <= o.L1 ? 0f : -(z - Math.Sign(z) * o.L1) / ((o.Beta + MathF.Sqrt(next)) / o.LearningRate + o.L2);
    }

    private void Admit(ulong key, Id id)
    {
        int d = _options.Dimension;
        var o = _options.Optimizer;
        id.Values = new float[d];
        id.State = new float[o.StateWidth * d];
        for (int c = 0; c < d; c++)
        {
            float w = EmbeddingTable.InitialValue(key, c, _options.InitScale);
            id.Values[c] = w;
            if (o.Kind == SparseOptimizerKind.Adagrad)
            {
                id.State[c] = o.InitialAccumulator;
            }
            else
            {
                id.State[c] = -w * ((o.Beta + MathF.Sqrt(o.InitialAccumulator)) / o.LearningRate + o.L2) - Math.Sign(w) * o.L1;
                id.State[d + c] = o.InitialAccumulator;
            }
        }
        Rows++;
    }

    private void MakeRoom(ulong[] keys)
    {
        int n = keys.Length;
        int free = Capacity - 1 - Rows;
        if (free < n)
        {
            if (Capacity < _options.MaxCapacity)
            {
                Capacity = (int)Math.Min(Math.Max(2L * Capacity, (long)Capacity + n - free), _options.MaxCapacity);
            }
            free = Capacity - 1 - Rows;
            if (free < n)
            {
                ForgetIdlest(Math.Max(n - free, (int)Math.Ceiling(_options.EvictionFraction * Capacity)), withRows: true, keys);
            }
        }
        long pendingLimit = (long)_options.PendingIdsPerRow * _options.MaxCapacity;
        if (Ids - Rows + n > pendingLimit)
        {
            ForgetIdlest((int)(Ids - Rows + n - pendingLimit), withRows: false, keys);
        }
    }

    private void ForgetIdlest(int count, bool withRows, ulong[] pinned)
    {
        var keep = pinned.ToHashSet();
        _ids.Where(p => (p.Value.Values is not null) == withRows && !keep.Contains(p.Key))
            .OrderBy(p => p.Value.LastMs).ThenBy(p => p.Key).Take(count).Select(p => p.Key).ToList().ForEach(Forget);
    }

    private void Forget(ulong key)
    {
        if (_ids.Remove(key, out var id) && id.Values is not null)
        {
            Rows--;
        }
    }

    private sealed class Id
    {
        public int Count;
        public long LastMs;
        public float[]? Values;
        public float[]? State;
    }
}

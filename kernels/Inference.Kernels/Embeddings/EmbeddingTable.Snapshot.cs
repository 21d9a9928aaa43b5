using Inference.Kernels.Features;

namespace Inference.Kernels.Embeddings;

// Checkpoints: the whole table to the host and back, rows renumbered densely on the way.
public sealed partial class EmbeddingTable
{
    /// <summary>Copies the table's state to the host (ids ascending, rows renumbered in that order).</summary>
    public EmbeddingSnapshot Snapshot()
    {
        var entries = new IdEntry[_hashMask + 1];
        Download(_hash, entries);
        var values = new float[(long)Capacity * _dimension];
        var state = new float[(long)Capacity * _stateWidth * _dimension];
        Download(_values, values);
        Download(_state, state);
        var live = new List<IdEntry>(Ids);
        foreach (var entry in entries)
        {
            if (entry.Key != 0 && entry.Key != FeatureTable.Tombstone)
            {
                live.Add(entry);
            }
        }
        live.Sort((a, b) => a.Key.CompareTo(b.Key));
        int held = 0;
        foreach (var entry in live)
        {
            held += entry.RowPlusOne > 0 ? 1 : 0;
        }
        int width = _stateWidth * _dimension;
        var snapshotValues = new float[(held + 1L) * _dimension];
        var snapshotState = new float[(held + 1L) * width];
        values.AsSpan(0, _dimension).CopyTo(snapshotValues);
        state.AsSpan(0, width).CopyTo(snapshotState);
        var keys = new ulong[live.Count];
        var lastMs = new long[live.Count];
        var counts = new int[live.Count];
        var rows = new int[live.Count];
        int next = 1;
        for (int i = 0; i < live.Count; i++)
        {
            var entry = live[i];
            keys[i] = entry.Key;
            lastMs[i] = entry.LastMs;
            counts[i] = entry.Count;
            if (entry.RowPlusOne > 0)
            {
                int row = entry.RowPlusOne - 1;
                values.AsSpan(row * _dimension, _dimension).CopyTo(snapshotValues.AsSpan(next * _dimension));
                state.AsSpan(row * width, width).CopyTo(snapshotState.AsSpan(next * width));
                rows[i] = next++;
            }
        }
        return new EmbeddingSnapshot(_dimension, _options.Optimizer.Kind, keys, lastMs, counts, rows, snapshotValues, snapshotState);
    }

    /// <summary>Replaces the table's state with <paramref name="snapshot"/>'s (taken from a table of the same dimension and optimizer).</summary>
    public void Restore(EmbeddingSnapshot snapshot)
    {
        if (snapshot.Dimension != _dimension || snapshot.Optimizer != _options.Optimizer.Kind)
        {
            throw new ArgumentException($"A snapshot of {snapshot.Dimension}-value rows under {snapshot.Optimizer} does not fit a table of {_dimension}-value rows under {_options.Optimizer.Kind}.", nameof(snapshot));
        }
        int held = snapshot.RowCount;
        if (held + 1L > _options.MaxCapacity)
        {
            throw new ArgumentException($"The snapshot holds {held} rows; this table holds at most {_options.MaxCapacity - 1}.", nameof(snapshot));
        }
        int capacity = (int)Math.Min(_options.MaxCapacity, Math.Max((long)_options.InitialCapacity, held + 1L + _options.MaxBatchIds));
        _values.Dispose();
        _state.Dispose();
        _freeList.Dispose();
        AllocateRows(capacity, firstFree: held + 1);
        Upload(_values, snapshot.Values);
        Upload(_state, snapshot.State);

        int size = HashSizeFor(snapshot.Keys.Length + (long)capacity);
        var entries = new IdEntry[size];
        int mask = size - 1;
        for (int i = 0; i < snapshot.Keys.Length; i++)
        {
            int bucket = FeatureKernels.Home(snapshot.Keys[i], mask);
            while (entries[bucket].Key != 0)
            {
                bucket = (bucket + 1) & mask;
            }
            entries[bucket] = new IdEntry { Key = snapshot.Keys[i], LastMs = snapshot.LastMs[i], Count = snapshot.Counts[i], RowPlusOne = snapshot.Rows[i] > 0 ? snapshot.Rows[i] + 1 : 0 };
        }
        _hash.Dispose();
        _hash = AllocateHash(size, out _hashMask);
        Upload(_hash, entries);
        Ids = snapshot.Keys.Length;
        _tombstones = 0;
    }
}

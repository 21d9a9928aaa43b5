using System.Numerics;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>
/// Point-in-time reads for rows whose running aggregates (counts, sums, minima, maxima, last values) already
/// include events after the row's time: each such row's entity's journaled events up to that time are applied
/// to a scratch table of the same plan, on the same accelerator and by the same kernels, and the row is read
/// from it as of its time. Exact when the journal holds every event the table applied to the entity (checked
/// against the table's count); other rows stay flagged inexact. Runs on the device executor's thread.
/// </summary>
/// <remarks>
/// The scratch table is kept and emptied between reads (built anew only when a read needs more room than it
/// has): building one per read cost its buffers, its kernels and on the CPU backend a worker thread, about
/// 5 ms of the executor's time per training mini-batch, during which Score calls waited.
/// </remarks>
internal sealed class PointInTimeReplay(DeviceContext device, FeaturePlan plan, EventJournal journal) : IDisposable
{
    private readonly List<int> _slots = [];
    private FeatureTable? _scratch;

    public EventJournal Journal => journal;

    /// <summary>
    /// Reads again, as of their times, the rows of <paramref name="inexact"/> that <paramref name="skip"/> does not
    /// mark (rows joined with what was served keep it): their features into <paramref name="output"/> (and last keys
    /// into <paramref name="lastKeys"/>), clearing their flags. Returns the rows read again.
    /// </summary>
    public int Correct(FeatureTable table, ReadOnlySpan<ulong> entities, ReadOnlySpan<long> times, Span<float> output, Span<bool> inexact, Span<ulong> lastKeys, bool[]? skip)
    {
        var rows = new List<int>();
        var events = new List<(int Slot, int Row)>();
        for (int r = 0; r < entities.Length; r++)
        {
            if (!inexact[r] || (skip is not null && skip[r]) || table.Find(entities[r]) is not { } state)
            {
                continue;
            }
            if (journal.TryCollect(entities[r], state.Count, times[r], _slots))
            {
                rows.Add(r);
                foreach (int slot in _slots)
                {
                    events.Add((slot, rows.Count - 1));
                }
            }
        }
        if (rows.Count == 0)
        {
            return 0;
        }
        // One scratch entity per row (a row's entity may be read at two times in one call).
        var keys = rows.Select((_, i) => Scratch(i)).ToArray();
        int batchEvents = Math.Max(1, Math.Min(events.Count, FeatureTableOptions.DefaultMaxBatchEvents));
        var scratch = Scratch(rows.Count, batchEvents);
        for (int start = 0; start < events.Count; start += batchEvents)
        {
            int n = Math.Min(batchEvents, events.Count - start);
            var batchEntities = new ulong[n];
            var batchTimes = new long[n];
            var numeric = Enumerable.Range(0, journal.NumericColumns).Select(_ => new float[n]).ToArray();
            var keyColumns = Enumerable.Range(0, journal.KeyColumns).Select(_ => new ulong[n]).ToArray();
            for (int i = 0; i < n; i++)
            {
                var (slot, row) = events[start + i];
                batchEntities[i] = keys[row];
                batchTimes[i] = journal.Time(slot);
                for (int c = 0; c < numeric.Length; c++)
                {
                    numeric[c][i] = journal.Numeric(slot, c);
                }
                for (int c = 0; c < keyColumns.Length; c++)
                {
                    keyColumns[c][i] = journal.Key(slot, c);
                }
            }
            scratch.Apply(new ArrayBatch(batchEntities, batchTimes, numeric, keyColumns));
        }
        int width = plan.Count;
        int lastKeyWidth = plan.LastKeyFields.Count;
        var read = new float[rows.Count * width];
        var readLastKeys = new ulong[rows.Count * lastKeyWidth];
        var stillInexact = new bool[rows.Count];
        var readTimes = new long[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            readTimes[i] = times[rows[i]];
        }
        scratch.GatherAsOf(keys, readTimes, read, stillInexact, lastKeys: lastKeyWidth == 0 ? default : readLastKeys);
        int corrected = 0;
        for (int i = 0; i < rows.Count; i++)
        {
            if (stillInexact[i])
            {
                continue;
            }
            int r = rows[i];
            read.AsSpan(i * width, width).CopyTo(output[(r * width)..]);
            if (lastKeyWidth > 0 && !lastKeys.IsEmpty)
            {
                readLastKeys.AsSpan(i * lastKeyWidth, lastKeyWidth).CopyTo(lastKeys[(r * lastKeyWidth)..]);
            }
            inexact[r] = false;
            corrected++;
        }
        return corrected;
    }

    /// <summary>
    /// The scratch table, empty, with room for every row's entity twice over and for a whole batch (a batch may not
    /// exceed the table's capacity); a larger one, to the next power of two, when the kept one is too small.
    /// </summary>
    private FeatureTable Scratch(int rows, int batchEvents)
    {
        int capacity = Math.Max(Math.Max(16, 2 * rows), batchEvents);
        if (_scratch is { } kept && kept.Capacity >= capacity && kept.Options.MaxBatchEvents >= batchEvents)
        {
            kept.Clear();
            return kept;
        }
        _scratch?.Dispose();
        _scratch = null;
        capacity = (int)BitOperations.RoundUpToPowerOf2((uint)capacity);
        _scratch = new FeatureTable(device, plan, new FeatureTableOptions
        {
            InitialCapacity = capacity,
            MaxCapacity = capacity,
            MaxBatchEvents = Math.Min(capacity, FeatureTableOptions.DefaultMaxBatchEvents),
            MaxGatherRows = capacity / 2,
        });
        return _scratch;
    }

    public void Dispose()
    {
        _scratch?.Dispose();
        _scratch = null;
    }

    /// <summary>A scratch table's key for the i-th row read again: distinct per row, never 0.</summary>
    private static ulong Scratch(int i) => (ulong)(i + 1) * 0x9E3779B97F4A7C15UL;
}

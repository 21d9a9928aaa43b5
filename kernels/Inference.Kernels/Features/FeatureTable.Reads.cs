
namespace Inference.Kernels.Features;

// Reads: dense [rows × features] matrices for serving and training, and one entity's summary.
public sealed partial class FeatureTable
{
    /// <summary>Model-input width: one column per declared feature, in declaration order.</summary>
    public int Width => Plan.Count;

    /// <summary>
    /// Writes every feature of each entity as of <paramref name="nowMs"/> into <paramref name="output"/>
    /// (row-major, <see cref="Width"/> columns), transformed as declared. Entities the table does
    /// not hold read as defaults. With <paramref name="lastKeys"/>, each row's last keys too
    /// (<see cref="FeaturePlan.LastKeyFields"/> per row; 0 where there is none).
    /// </summary>
    public void Gather(ReadOnlySpan<ulong> entities, long nowMs, Span<float> output, bool transform = true, Span<ulong> lastKeys = default) =>
        Read(entities, [], nowMs, output, [], transform, lastKeys);

    /// <summary>
    /// Point-in-time read: each row's features as of its own event time. Windowed features are exact
    /// (bucket-aligned) while the time is within the ring; decayed sums decay to the time when it is
    /// after the entity's newest event. Running aggregates (count, sum, min, …) cannot take back
    /// events newer than the time: such rows are flagged in <paramref name="inexact"/>, as are rows whose
    /// last keys (<paramref name="lastKeys"/>, as in <see cref="Gather"/>) may be of a newer event.
    /// </summary>
    public void GatherAsOf(ReadOnlySpan<ulong> entities, ReadOnlySpan<long> timesMs, Span<float> output, Span<bool> inexact, bool transform = true, Span<ulong> lastKeys = default)
    {
        if (timesMs.Length != entities.Length || inexact.Length < entities.Length)
        {
            throw new ArgumentException("One time and one inexact flag per row.");
        }
        Read(entities, timesMs, 0, output, inexact, transform, lastKeys);
    }

    /// <summary>An entity's event count and newest event time, or null when the table does not hold it.</summary>
    public (long Count, long NewestEventTimeMs)? Find(ulong entity)
    {
        ulong key = TableKey(entity);
        Upload(_readKeys, new ReadOnlySpan<ulong>(in key));
        _lookup(1, 1, HashView(), ReadView(1, perRowTime: false, 0, transform: false));
        _device.Synchronize();
        int slot = -1;
        Download(_readSlots, new Span<int>(ref slot));
        if (slot < 0)
        {
            return null;
        }
        SlotHeader head = default;
        Download(_heads, new Span<SlotHeader>(ref head), slot);
        return head.Count == 0 ? null : (head.Count, head.MaxTime);
    }

    private void Read(ReadOnlySpan<ulong> entities, ReadOnlySpan<long> times, long now, Span<float> output, Span<bool> inexact, bool transform, Span<ulong> lastKeys)
    {
        int width = Plan.Count;
        int keyWidth = Plan.LastKeyFields.Count;
        if (output.Length < entities.Length * width)
        {
            throw new ArgumentException($"The output needs {entities.Length * width} floats.", nameof(output));
        }
        if (!lastKeys.IsEmpty && lastKeys.Length < entities.Length * keyWidth)
        {
            throw new ArgumentException($"The last keys need {entities.Length * keyWidth} values.", nameof(lastKeys));
        }
        bool perRow = !times.IsEmpty;
        {
            for (int start = 0; start < entities.Length; start += _options.MaxGatherRows)
            {
                int rows = Math.Min(_options.MaxGatherRows, entities.Length - start);
                var keys = _hostKeys.AsSpan(0, rows);
                entities.Slice(start, rows).CopyTo(keys);
                for (int i = 0; i < rows; i++)
                {
                    keys[i] = TableKey(keys[i]);
                }
                Upload(_readKeys, keys);
                if (perRow)
                {
                    Upload(_readTimes, times.Slice(start, rows));
                }
                var read = ReadView(rows, perRow, now, transform);
                int threads = _kernels.Threads(rows);
                _gather(threads, threads, HashView(), read, SlotView(), PlanView());
                _device.Synchronize();
                Download(_readOutput, output.Slice(start * width, rows * width));
                if (keyWidth > 0 && !lastKeys.IsEmpty)
                {
                    Download(_readLastKeys, lastKeys.Slice(start * keyWidth, rows * keyWidth));
                }
                if (perRow)
                {
                    Download(_readInexact, _hostInexact.AsSpan(0, rows));
                    for (int i = 0; i < rows; i++)
                    {
                        inexact[start + i] = _hostInexact[i] != 0;
                    }
                }
            }
        }
    }

    private ReadView ReadView(int rows, bool perRowTime, long now, bool transform) => new()
    {
        Keys = Col(_readKeys),
        Slots = Col(_readSlots),
        Times = Col(_readTimes),
        Output = Col(_readOutput),
        Inexact = Col(_readInexact),
        LastKeys = Col(_readLastKeys),
        Rows = rows,
        PerRowTime = perRowTime ? 1 : 0,
        Now = now,
        ApplyTransform = transform ? 1 : 0,
    };
}

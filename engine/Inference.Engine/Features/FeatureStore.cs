using System.Diagnostics;
using Apache.Arrow;
using Inference.Engine.Hosting;
using Inference.Kernels.Accelerators;
using Inference.Kernels.State;

namespace Inference.Engine.Features;

/// <summary>
/// The features stage: resolves entity hashes to slots, applies Arrow micro-batches to the
/// accelerator-resident state table and gathers model inputs for scoring and training. A batch is
/// applied under the device gate, so a gather sees either none or all of it, and the watermark
/// moves with it.
/// </summary>
public sealed class FeatureStore : IDisposable
{
    private readonly DeviceContext _device;
    private readonly InferenceMetrics _metrics;
    private readonly EntitySlotMap _slots;
    private readonly StateTable _table;

    // Scratch reused across batches (touched only under the device gate).
    private readonly int[] _batchSlots;
    private readonly int[] _touched;
    private readonly int[] _touchMark;
    private readonly long[] _keptTimes;
    private readonly float[] _keptValues;
    private int _batchSequence;
    private FeatureWatermark _watermark = FeatureWatermark.Empty;

    public FeatureStore(DeviceContext device, FeatureOptions options, InferenceMetrics metrics)
    {
        _device = device;
        _metrics = metrics;
        Fields = options.Fields;
        _slots = new EntitySlotMap(options.Capacity);
        _table = new StateTable(device, options.Capacity, options.Fields.Count, options.HalfLifeMs, options.MaxBatchEvents);
        _batchSlots = new int[options.MaxBatchEvents];
        _touched = new int[options.MaxBatchEvents];
        _touchMark = new int[options.Capacity];
        _keptTimes = new long[options.MaxBatchEvents];
        _keptValues = new float[options.MaxBatchEvents * options.Fields.Count];
    }

    public IReadOnlyList<string> Fields { get; }

    /// <summary>Columns of entity features per row handed to the model.</summary>
    public int FeatureWidth => _table.FeatureWidth;

    public string AcceleratorDescription => _device.Description;

    public int Entities
    {
        get
        {
            lock (_device.Gate)
            {
                return _slots.Count;
            }
        }
    }

    public FeatureWatermark Watermark => Volatile.Read(ref _watermark);

    /// <summary>
    /// Applies one micro-batch (columns entity: uint64, ts: int64, then one float column per field)
    /// and advances the watermark to <paramref name="offsets"/>. Returns the events applied.
    /// </summary>
    public int Apply(RecordBatch batch, ReadOnlySpan<PartitionOffset> offsets)
    {
        int n = batch.Length;
        var entities = ((UInt64Array)batch.Column(0)).Values;
        var times = ((Int64Array)batch.Column(1)).Values;
        var columns = new RecordBatchColumns(batch);
        long started = Stopwatch.GetTimestamp();
        int applied;
        lock (_device.Gate)
        {
            int sequence = ++_batchSequence;
            int touched = 0, dropped = 0;
            long maxTime = 0;
            for (int i = 0; i < n; i++)
            {
                int slot = _slots.GetOrAdd(entities[i]);
                _batchSlots[i] = slot;
                if (slot < 0)
                {
                    dropped++;
                    continue;
                }
                if (_touchMark[slot] != sequence)
                {
                    _touchMark[slot] = sequence;
                    _touched[touched++] = slot;
                }
                maxTime = Math.Max(maxTime, times[i]);
            }

            applied = n - dropped;
            if (dropped == 0)
            {
                _table.Apply(_batchSlots.AsSpan(0, n), times, _touched.AsSpan(0, touched), columns);
            }
            else if (applied > 0)
            {
                // The table is full: keep the events of entities that have a slot.
                int kept = 0;
                for (int i = 0; i < n; i++)
                {
                    if (_batchSlots[i] < 0)
                    {
                        continue;
                    }
                    _batchSlots[kept] = _batchSlots[i];
                    _keptTimes[kept] = times[i];
                    for (int f = 0; f < Fields.Count; f++)
                    {
                        _keptValues[f * applied + kept] = columns.Column(f)[i];
                    }
                    kept++;
                }
                _table.Apply(_batchSlots.AsSpan(0, applied), _keptTimes.AsSpan(0, applied), _keptValues, _touched.AsSpan(0, touched), applied);
            }
            if (dropped > 0)
            {
                _metrics.Dropped(dropped);
            }
            Volatile.Write(ref _watermark, _watermark.Advance(offsets, maxTime));
        }
        _metrics.BatchApplied(applied, Stopwatch.GetElapsedTime(started).TotalSeconds);
        return applied;
    }

    /// <summary>
    /// Writes <see cref="FeatureWidth"/> model-input columns per entity into <paramref name="output"/>,
    /// as of the newest event time applied. Unknown entities read as empty entities. Returns the
    /// watermark of exactly the state that was read.
    /// </summary>
    public FeatureWatermark Gather(ReadOnlySpan<ulong> entities, Span<float> output, Span<int> slotScratch)
    {
        lock (_device.Gate)
        {
            for (int i = 0; i < entities.Length; i++)
            {
                slotScratch[i] = _slots.Find(entities[i]);
            }
            _table.Gather(slotScratch[..entities.Length], _watermark.MaxEventTimeMs, output);
            return _watermark;
        }
    }

    /// <summary>One entity's raw aggregates, or null when it was never seen.</summary>
    public EntityState? Read(string entity)
    {
        lock (_device.Gate)
        {
            int slot = _slots.Find(EntityKey.Hash(entity));
            return slot < 0 ? null : _table.Read(slot);
        }
    }

    public void Dispose() => _table.Dispose();

    private readonly struct RecordBatchColumns(RecordBatch batch) : IFieldColumns
    {
        public ReadOnlySpan<float> Column(int field) => ((FloatArray)batch.Column(2 + field)).Values;
    }
}

using System.Diagnostics;
using Apache.Arrow;
using Inference.Engine.Hosting;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Features;

/// <summary>
/// The features stage: applies Arrow micro-batches to the accelerator-resident feature table and
/// reads dense model inputs for scoring and training. A batch and the watermark move together under
/// the device gate, so a read sees either none or all of a batch and reports the watermark it saw.
/// </summary>
public sealed partial class FeatureStore : IDisposable
{
    private readonly DeviceContext _device;
    private readonly InferenceMetrics _metrics;
    private readonly ILogger _logger;
    private readonly FeatureTable _table;
    private readonly FeatureOptions _options;
    private FeatureWatermark _watermark = FeatureWatermark.Empty;
    private long _nextTtlScan;

    public FeatureStore(DeviceContext device, FeatureOptions options, InferenceMetrics metrics, ILogger<FeatureStore> logger)
    {
        _device = device;
        _options = options;
        _metrics = metrics;
        _logger = logger;
        Plan = new FeaturePlan(options.Definitions);
        _table = new FeatureTable(device, Plan, new FeatureTableOptions
        {
            InitialCapacity = Math.Min(options.InitialCapacity, options.Capacity),
            MaxCapacity = options.Capacity,
            MaxBatchEvents = options.MaxBatchEvents,
        });
        _nextTtlScan = Deadline.After(options.EvictionScanIntervalMs);
        _metrics.ObserveEntities(() => _table.Entities);
        Log.Declared(logger, Plan.Count, string.Join(", ", Plan.Definitions.Select(d => $"{d.Name} ({d.Aggregation})")), Plan.BytesPerEntity, device.Description);
    }

    public FeaturePlan Plan { get; }

    /// <summary>Model-input columns per row: one per declared feature.</summary>
    public int FeatureWidth => _table.Width;

    public string AcceleratorDescription => _device.Description;

    public int Entities => _table.Entities;

    public FeatureWatermark Watermark => Volatile.Read(ref _watermark);

    /// <summary>
    /// Applies one micro-batch (entity: uint64, ts: int64, a float column per numeric field, a
    /// uint64 column per key field, in the plan's order) and advances the watermark to
    /// <paramref name="offsets"/>. Returns the events applied.
    /// </summary>
    public int Apply(RecordBatch batch, ReadOnlySpan<PartitionOffset> offsets)
    {
        long started = Stopwatch.GetTimestamp();
        var columns = new RecordBatchColumns(batch, Plan.NumericFields.Count);
        ApplyResult result;
        lock (_device.Gate)
        {
            result = _table.Apply(columns);
            long newest = 0;
            foreach (long time in columns.Times)
            {
                newest = Math.Max(newest, time);
            }
            Volatile.Write(ref _watermark, _watermark.Advance(offsets, newest));
            ApplyTtl();
        }
        Record(result);
        _metrics.BatchApplied(result.Applied, Stopwatch.GetElapsedTime(started).TotalSeconds);
        return result.Applied;
    }

    private void Record(ApplyResult result)
    {
        if (result.Dropped > 0)
        {
            _metrics.Dropped(result.Dropped);
        }
        if (result.Evicted.Length > 0)
        {
            _metrics.Evicted(result.Evicted.Length, "capacity");
            Log.EvictedIdlest(_logger, result.Evicted.Length, _table.Capacity);
        }
        for (int f = 0; f < result.Late.Length; f++)
        {
            if (result.Late[f] > 0)
            {
                _metrics.Late(Plan.Definitions[f].Name, result.Late[f]);
            }
        }
    }

    private void ApplyTtl()
    {
        if (_options.EntityTtlMs <= 0 || Stopwatch.GetTimestamp() < _nextTtlScan)
        {
            return;
        }
        _nextTtlScan = Deadline.After(_options.EvictionScanIntervalMs);
        var evicted = _table.EvictIdle(_watermark.MaxEventTimeMs - _options.EntityTtlMs);
        if (evicted.Length > 0)
        {
            _metrics.Evicted(evicted.Length, "ttl");
        }
    }

    /// <summary>
    /// Writes <see cref="FeatureWidth"/> model-input columns per entity into <paramref name="output"/>,
    /// as of the newest event time applied. Unknown entities read as defaults. Returns the watermark of
    /// exactly the state that was read.
    /// </summary>
    public FeatureWatermark Gather(ReadOnlySpan<ulong> entities, Span<float> output)
    {
        lock (_device.Gate)
        {
            _table.Gather(entities, _watermark.MaxEventTimeMs, output);
            return _watermark;
        }
    }

    /// <summary>Point-in-time model inputs: each row as of its own event time (training joins labels this way).</summary>
    public int GatherAsOf(ReadOnlySpan<ulong> entities, ReadOnlySpan<long> timesMs, Span<float> output, Span<bool> inexact)
    {
        _table.GatherAsOf(entities, timesMs, output, inexact);
        int count = 0;
        foreach (bool flag in inexact[..entities.Length])
        {
            count += flag ? 1 : 0;
        }
        return count;
    }

    /// <summary>One entity's untransformed feature values as of the newest event applied, or null when the table does not hold it.</summary>
    public IReadOnlyDictionary<string, double>? Read(string entity)
    {
        ulong key = EntityKey.Hash(entity);
        var values = new float[FeatureWidth];
        lock (_device.Gate)
        {
            if (_table.Find(key) is null)
            {
                return null;
            }
            _table.Gather([key], _watermark.MaxEventTimeMs, values, transform: false);
        }
        var result = new Dictionary<string, double>(FeatureWidth);
        for (int f = 0; f < FeatureWidth; f++)
        {
            result[Plan.Definitions[f].Name] = values[f];
        }
        return result;
    }

    public void Dispose() => _table.Dispose();

    private readonly struct RecordBatchColumns(RecordBatch batch, int numeric) : IBatchColumns
    {
        public int Count => batch.Length;

        public ReadOnlySpan<ulong> Entities => ((UInt64Array)batch.Column(0)).Values;

        public ReadOnlySpan<long> Times => ((Int64Array)batch.Column(1)).Values;

        public ReadOnlySpan<float> Numeric(int column) => ((FloatArray)batch.Column(2 + column)).Values;

        public ReadOnlySpan<ulong> Keys(int column) => ((UInt64Array)batch.Column(2 + numeric + column)).Values;
    }

    private static partial class Log
    {
        [LoggerMessage(200, LogLevel.Information, "{Count} features on {Accelerator}: {Features}; {Bytes} bytes of state per entity.")]
        public static partial void Declared(ILogger logger, int count, string features, long bytes, string accelerator);

        [LoggerMessage(201, LogLevel.Warning, "The feature table is full at {Capacity} entities: evicted the {Count} idlest.")]
        public static partial void EvictedIdlest(ILogger logger, int count, int capacity);
    }
}

using Inference.Engine.Ingest;
using Inference.Engine.Kafka;

namespace Inference.Engine.Features;

/// <summary>
/// The events' sink: decodes each format in place into a micro-batch and hands closed batches to the
/// device executor without waiting for them. Two micro-batches alternate, so the next batch is
/// decoded while the device applies the last one (double buffering).
/// </summary>
internal sealed class EventSink : IBatchSink, IDisposable
{
    private readonly DeviceExecutor _executor;
    private readonly MicroBatchApply[] _batches;
    private readonly JsonEventDecoder _json;
    private readonly ProtobufEventDecoder _protobuf;
    private readonly ArrowEventDecoder _arrow;
    private readonly long _maxFutureMs;
    private readonly TimeProvider _time;
    private int _current;
    private int _sinceClock;

    private readonly IScoredBatchSink? _scoring;
    private readonly MisroutedEvents? _misrouted;
    private readonly CancellationToken _stopping;
    private int _partition;
    private long _offset;
    private long _timestampMs;

    /// <summary>
    /// Two micro-batches of <paramref name="capacity"/> events; events dated more than
    /// <paramref name="maxFutureMs"/> ahead of <paramref name="time"/>'s wall clock are refused (0: any time). With
    /// <paramref name="scoring"/>, the events its selector takes are handed to it once applied; with
    /// <paramref name="misrouted"/>, each message's entities are checked against its partition.
    /// </summary>
    public EventSink(DeviceExecutor executor, int capacity, long maxFutureMs, TimeProvider time, IScoredBatchSink? scoring = null, CancellationToken stopping = default, MisroutedEvents? misrouted = null)
    {
        _scoring = scoring;
        _misrouted = misrouted;
        _stopping = stopping;
        _executor = executor;
        _maxFutureMs = maxFutureMs;
        _time = time;
        var plan = executor.Plan;
        _batches =
        [
            new MicroBatchApply(new MicroBatch(plan.NumericFields, capacity, plan.KeyFields, executor), scoring),
            new MicroBatchApply(new MicroBatch(plan.NumericFields, capacity, plan.KeyFields, executor), scoring),
        ];
        _json = new JsonEventDecoder(plan.NumericFields, plan.KeyFields);
        _protobuf = new ProtobufEventDecoder(plan.NumericFields, plan.KeyFields);
        _arrow = new ArrowEventDecoder(plan.NumericFields, plan.KeyFields);
        RefreshClock();
    }

    /// <summary>The newest event time taken now: the wall clock plus the allowance (read every few thousand events, not per event).</summary>
    private void RefreshClock()
    {
        _json.MaxTimeMs = _protobuf.MaxTimeMs = _arrow.MaxTimeMs = FeatureOptions.LatestEventTimeMs(_time, _maxFutureMs);
        _sinceClock = 0;
    }

    private const int ClockEveryMessages = 1_024;

    private MicroBatchApply Current => _batches[_current];

    private MicroBatchApply Previous => _batches[1 - _current];

    public bool IsFull => Current.Batch.IsFull;

    public int Room => Current.Batch.Room;

    public bool CloseWhenIdle => true;

    public bool Busy => !Previous.IsIdle;

    public unsafe DecodeError Accept(EventFormat format, byte* payload, int length, ref int resume)
    {
        if (++_sinceClock >= ClockEveryMessages)
        {
            RefreshClock();
        }
        var span = new ReadOnlySpan<byte>(payload, length);
        var batch = Current.Batch;
        int first = batch.Count;
        int firstIndex = resume;
        var error = format switch
        {
            EventFormat.Json => _json.TryDecode(span, batch),
            EventFormat.Protobuf => _protobuf.TryDecode(span, batch),
            EventFormat.ProtobufBatch => _protobuf.DecodeBatch(span, batch, ref resume),
            EventFormat.Arrow => _arrow.Decode(payload, length, batch, ref resume),
            _ => DecodeError.UnknownContentType,
        };
        if (error == DecodeError.None && batch.Count > first)
        {
            _misrouted?.Check(_partition, batch.Entities[first..batch.Count]);
        }
        if (_scoring is not null && error == DecodeError.None && batch.Count > first)
        {
            _scoring.Selector.Capture(format, span, batch, first, firstIndex, _partition, _offset, _timestampMs);
        }
        return error;
    }

    public void At(int partition, long offset, long timestampMs)
    {
        _partition = partition;
        _offset = offset;
        _timestampMs = timestampMs;
    }

    public void Submit(ReadOnlySpan<PartitionOffset> offsets)
    {
        _misrouted?.Publish();
        _scoring?.WaitForRoom(_stopping);
        RefreshClock();
        var apply = Current;
        apply.SetOffsets(offsets);
        _executor.Submit(apply);
        _current = 1 - _current;
        // The other buffer is decoded into next: its apply must be done first.
        _ = Current.Wait();
        Current.Batch.Clear();
    }

    public void Drain()
    {
        _ = Previous.Wait();
        Previous.Batch.Clear();
    }

    public void Settle() => _scoring?.WaitSettled();

    public void Dispose()
    {
        foreach (var apply in _batches)
        {
            if (!apply.IsIdle)
            {
                // The device may be reading these columns: wait for it before freeing them.
                try
                {
                    _ = apply.Wait();
                }
                catch (InvalidOperationException)
                {
                    // The failure was reported to whoever submitted the batch.
                }
            }
            apply.Batch.Dispose();
        }
    }
}

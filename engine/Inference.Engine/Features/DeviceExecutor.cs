using System.Collections.Concurrent;
using System.Diagnostics;
using Apache.Arrow;
using Inference.Engine.Pipeline;
using Inference.Engine.Serving;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Features;

/// <summary>
/// The one owner of the accelerator and the feature table. Everything else sends it work and never
/// touches the device: serving gathers (batched dynamically), applies of micro-batches, the
/// trainer's point-in-time gathers and other reads, and maintenance (growth, capacity eviction, the
/// TTL scan) cut into slices. One thread runs it all, so a read always falls between two applies and
/// reports the watermark of exactly the state it read.
/// </summary>
/// <remarks>
/// Each turn of the loop serves waiting Score requests, then runs at most one apply, one read and
/// one maintenance slice, serving again between them: a request waits at most for one unit of work
/// already running. When the device is idle a request is launched at once; requests that arrive
/// while it is busy go together in the next gather (up to <see cref="ServingOptions.MaxBatchRows"/>).
/// </remarks>
public sealed partial class DeviceExecutor : IHostedService, IDisposable
{
    private readonly DeviceContext _device;
    private readonly FeatureTable _table;
    private readonly FeatureOptions _options;
    private readonly ServingOptions _serving;
    private readonly FeatureMetrics _metrics;
    private readonly ServingMetrics _servingMetrics;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<GatherRequest> _gathers = new();
    private readonly Func<FeatureWatermark> _publish;
    private readonly ConcurrentQueue<ApplyWork> _applies = new();
    private readonly ConcurrentQueue<ReadWork> _reads = new();
    private readonly ConcurrentQueue<WatermarkWaiter> _waiters = new();
    private readonly List<WatermarkWaiter> _waiting = [];
    private readonly ManualResetEventSlim _signal = new(false, spinCount: 100);
    private readonly Thread _thread;
    private readonly GatherRequest[] _batch;
    private readonly ulong[] _batchKeys;
    private readonly float[] _batchFeatures;
    private int _queued;
    private volatile bool _stopping;
    private bool _started;
    private bool _disposed;

    private readonly WatermarkBuilder _applied = new();
    private FeatureWatermark _watermark = FeatureWatermark.Empty;
    private bool _watermarkDirty;
    private int _entities;
    private int _capacity;

    public DeviceExecutor(DeviceContext device, FeaturePlan plan, FeatureOptions options, ServingOptions serving, FeatureMetrics metrics, ServingMetrics servingMetrics, ILogger<DeviceExecutor> logger, PartitionOwnership? ownership = null)
    {
        _ownership = ownership;
        _device = device;
        _options = options;
        _serving = serving;
        _metrics = metrics;
        _servingMetrics = servingMetrics;
        _logger = logger;
        // A dynamic batch holds up to MaxBatchRows rows, or one larger request alone.
        int batchRows = Math.Max(serving.MaxBatchRows, serving.MaxRowsPerRequest);
        _table = new FeatureTable(device, plan, new FeatureTableOptions
        {
            InitialCapacity = Math.Min(options.InitialCapacity, options.Capacity),
            MaxCapacity = options.Capacity,
            MaxBatchEvents = options.MaxBatchEvents,
            MaxGatherRows = batchRows,
        });
        _batch = new GatherRequest[batchRows];
        _batchKeys = new ulong[batchRows];
        _batchFeatures = new float[batchRows * plan.Count];
        _entities = _table.Entities;
        _capacity = _table.Capacity;
        _nextTtlScan = Deadline.After(options.EvictionScanIntervalMs);
        _metrics.ObserveEntities(() => Volatile.Read(ref _entities));
        _servingMetrics.ObserveQueue(() => Volatile.Read(ref _queued));
        _publish = Publish;
        _thread = new Thread(Run) { IsBackground = true, Name = "inference-device" };
        ExecutorLog.Declared(logger, plan.Count, string.Join(", ", plan.Definitions.Select(d => $"{d.Name} ({d.Aggregation})")), plan.BytesPerEntity, device.Description);
    }

    public FeaturePlan Plan => _table.Plan;

    public string AcceleratorDescription => _device.Description;

    /// <summary>Entities held, as of the last unit of work.</summary>
    public int Entities => Volatile.Read(ref _entities);

    /// <summary>Slots of the feature table as of the last unit of work (a snapshot's size).</summary>
    public int Capacity => Volatile.Read(ref _capacity);

    /// <summary>
    /// What the table holds: the last applied offset per partition and the newest event time, as of
    /// the executor's last snapshot. Snapshots are taken when a gather or read runs, when a
    /// read-your-writes caller is released and when the executor goes idle, not per batch: under a
    /// sustained backlog with no reads this lags the table by the batches applied since.
    /// (<see cref="FeatureStore.Watermark"/> goes through the executor and is exact.)
    /// </summary>
    public FeatureWatermark Watermark => Volatile.Read(ref _watermark);

    /// <summary>How long the executor stays idle before it publishes the watermark for readers on other threads.</summary>
    private const int IdlePublishMs = 2;

    /// <summary>Takes a watermark snapshot of the applied state when it moved since the last one (executor thread).</summary>
    private FeatureWatermark Publish()
    {
        // Responses list the owned partitions only: a revocation or assignment publishes anew.
        if (_ownership is not null && _ownership.Version != _ownershipVersion)
        {
            _ownershipVersion = _ownership.Version;
            _watermarkDirty = true;
        }
        if (_watermarkDirty)
        {
            Volatile.Write(ref _watermark, _applied.Snapshot(_ownership is null ? null : _ownership.Serves));
            _watermarkDirty = false;
        }
        return _watermark;
    }

    private readonly PartitionOwnership? _ownership;
    private long _ownershipVersion;
    private long _poolEventTimeMs;

    /// <summary>
    /// In a pool: the newest event time any worker applied, as the pool last said. Features are read as of
    /// the newer of it and this worker's own, so time-relative features (decays, windows, time since last)
    /// of every worker's entities are those of one node that applied every partition.
    /// </summary>
    public long PoolEventTimeMs
    {
        get => Interlocked.Read(ref _poolEventTimeMs);
        set => Interlocked.Exchange(ref _poolEventTimeMs, value);
    }

    /// <summary>The time features are read as of: the newest event applied here, or in the pool when that is newer.</summary>
    public long AsOf(FeatureWatermark watermark) => Math.Max(watermark.MaxEventTimeMs, PoolEventTimeMs);

    /// <summary>True once the host is stopping: new requests are refused.</summary>
    public bool IsStopping => _stopping;

    /// <summary>Score requests waiting for the device.</summary>
    public int QueuedRequests => Volatile.Read(ref _queued);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_started)
        {
            _started = true;
            _thread.Start();
        }
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Stop();
        return Task.CompletedTask;
    }

    /// <summary>
    /// Queues a serving gather. Returns false at once when <see cref="ServingOptions.MaxQueuedRequests"/>
    /// are already waiting (the caller sheds the request) or the executor is stopping.
    /// </summary>
    public bool TryEnqueue(GatherRequest request)
    {
        if (_stopping)
        {
            return false;
        }
        if (Interlocked.Increment(ref _queued) > _serving.MaxQueuedRequests)
        {
            Interlocked.Decrement(ref _queued);
            return false;
        }
        _gathers.Enqueue(request);
        _signal.Set();
        return true;
    }

    /// <summary>
    /// Applies one micro-batch (entity: uint64, ts: int64, a float column per numeric field, a uint64
    /// column per key field, in the plan's order), advances the watermark to <paramref name="offsets"/>
    /// and returns the events applied once the device is done. Blocks the calling thread.
    /// </summary>
    public int Apply(RecordBatch batch, ReadOnlySpan<PartitionOffset> offsets)
    {
        var work = new RecordBatchApply(batch);
        work.SetOffsets(offsets);
        Submit(work);
        return work.Wait();
    }

    /// <summary>
    /// Queues an apply and returns at once; <see cref="ApplyWork.Wait"/> says when the device is done.
    /// An ingest thread decodes the next batch meanwhile (double buffering).
    /// </summary>
    public void Submit(ApplyWork work)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        work.Begin();
        _applies.Enqueue(work);
        _signal.Set();
    }

    /// <summary>
    /// Page-locks host memory for uploads (on CUDA: host registration, done on the executor thread
    /// that owns the device). Null on the CPU backends, whose kernels read host memory directly.
    /// </summary>
    public IDisposable? PageLock(IntPtr address, long bytes) =>
        !_device.IsCuda ? null : OnDevice(() => _device.PageLock(address, bytes));

    /// <summary>Releases a page lock from <see cref="PageLock"/> on the executor thread.</summary>
    public void Unlock(IDisposable? pageLock)
    {
        if (pageLock is not null)
        {
            OnDevice<object?>(() =>
            {
                pageLock.Dispose();
                return null;
            });
        }
    }

    /// <summary>
    /// A consistent copy of every entity's state and the watermark it includes, taken between two units
    /// of work (applies and reads wait for as long as the copy takes).
    /// </summary>
    /// <param name="reuse">A snapshot no longer needed whose arrays may be written over.</param>
    public Task<(FeatureTableSnapshot Table, FeatureWatermark Watermark)> SnapshotAsync(FeatureTableSnapshot? reuse = null) =>
        ReadAsync((table, watermark) => (table.Snapshot(reuse), watermark));

    /// <summary>Replaces every entity's state and the watermark with a checkpoint's (at start, before ingest).</summary>
    public void Restore(FeatureTableSnapshot table, FeatureWatermark watermark) =>
        OnDevice<object?>(() =>
        {
            AbortMaintenance();
            _table.Restore(table);
            _applied.Restore(watermark);
            _watermarkDirty = true;
            Volatile.Write(ref _entities, _table.Entities);
            Volatile.Write(ref _capacity, _table.Capacity);
            Publish();
            return null;
        });

    /// <summary>
    /// A pool rebalance, between two batches: the entities of <paramref name="leaving"/> partitions are dropped
    /// and forgotten by the watermark; those of <paramref name="arriving"/> ones are replaced by
    /// <paramref name="source"/>'s (a checkpoint of their previous owner) with its offsets for them.
    /// </summary>
    public void MovePartitions(string topic, int partitionCount, IReadOnlySet<int> leaving, FeatureTableSnapshot? source, IReadOnlySet<int> arriving,
        IReadOnlyList<PartitionOffset> arrivingOffsets) =>
        OnDevice<object?>(() =>
        {
            AbortMaintenance();
            var drop = new HashSet<int>(leaving);
            if (source is not null)
            {
                drop.UnionWith(arriving);
            }
            var moved = _table.Snapshot().WithoutPartitions(drop, partitionCount);
            if (source is not null)
            {
                moved = moved.WithEntitiesOf(source, arriving, partitionCount);
            }
            _table.Restore(moved);
            _applied.Remove(topic, drop);
            _applied.Advance([.. arrivingOffsets], 0);
            _watermarkDirty = true;
            Volatile.Write(ref _entities, _table.Entities);
            Volatile.Write(ref _capacity, _table.Capacity);
            Publish();
            return null;
        });

    /// <summary>Runs device work on the executor thread while it runs; before start or after stop, here.</summary>
    private T OnDevice<T>(Func<T> work) =>
        _started && !_stopping && Thread.CurrentThread != _thread ? Read((_, _) => work()) : work();

    /// <summary>
    /// Completes when the applied state covers <paramref name="minimum"/> (every partition it names at
    /// least at its offset): read-your-writes for a caller that knows where its events landed.
    /// </summary>
    /// <remarks>Null, at once, when <see cref="ServingOptions.MaxWatermarkWaiters"/> calls wait already.</remarks>
    public Task? WaitForAsync(IReadOnlyList<PartitionOffset> minimum, CancellationToken cancellation)
    {
        if (Volatile.Read(ref _watermark).Covers(minimum))
        {
            return Task.CompletedTask;
        }
        if (Interlocked.Increment(ref _watermarkWaiters) > _serving.MaxWatermarkWaiters)
        {
            Interlocked.Decrement(ref _watermarkWaiters);
            return null;
        }
        var waiter = new WatermarkWaiter(minimum, cancellation);
        waiter.Task.ContinueWith(_ => Interlocked.Decrement(ref _watermarkWaiters), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        _waiters.Enqueue(waiter);
        // The watermark may have moved between the look and the enqueue: the executor looks again.
        _signal.Set();
        return waiter.Task;
    }

    /// <summary>Runs <paramref name="read"/> on the executor between two units of work and returns its result.</summary>
    public Task<T> ReadAsync<T>(Func<FeatureTable, FeatureWatermark, T> read)
    {
        var work = new ReadWork<T>(read);
        _reads.Enqueue(work);
        _signal.Set();
        return work.Completion.Task;
    }

    /// <summary>
    /// A serving read (GetFeatures): as <see cref="ReadAsync{T}"/>, or null at once when
    /// <see cref="ServingOptions.MaxQueuedReads"/> serving reads wait already.
    /// </summary>
    public Task<T>? TryReadAsync<T>(Func<FeatureTable, FeatureWatermark, T> read)
    {
        if (Interlocked.Increment(ref _queuedReads) > _serving.MaxQueuedReads)
        {
            Interlocked.Decrement(ref _queuedReads);
            return null;
        }
        var task = ReadAsync(read);
        task.ContinueWith(_ => Interlocked.Decrement(ref _queuedReads), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return task;
    }

    private int _queuedReads;
    private int _watermarkWaiters;

    /// <summary>Runs <paramref name="read"/> on the executor and waits for it (for dedicated threads such as the trainer's).</summary>
    public T Read<T>(Func<FeatureTable, FeatureWatermark, T> read) => ReadAsync(read).GetAwaiter().GetResult();

    private void Run()
    {
        ExecutorLog.Started(_logger, _device.Description, _serving.MaxBatchRows, _serving.MaxQueueDelayMicroseconds, _serving.MaxQueuedRequests);
        while (true)
        {
            // Reset before looking: work queued after the look sets the signal again.
            _signal.Reset();
            bool worked = Serve();
            worked |= ApplyOne();
            worked |= Serve();
            worked |= ReadOne();
            worked |= Serve();
            try
            {
                worked |= MaintainOne();
            }
            catch (Exception error)
            {
                // Maintenance is retried at its next interval; the executor must outlive a failed slice.
                ExecutorLog.MaintenanceFailed(_logger, error);
                AbortMaintenance();
            }
            ReleaseWaiters();
            if (worked)
            {
                // Applies and maintenance change the entity count; readers on other threads see this copy.
                Volatile.Write(ref _entities, _table.Entities);
                Volatile.Write(ref _capacity, _table.Capacity);
                continue;
            }
            if (_stopping && _applies.IsEmpty && _reads.IsEmpty)
            {
                Publish();
                break;
            }
            // Idle: once no work has come for a moment, readers on other threads see the state as it
            // is (not at every short gap between batches of a backlog: a snapshot is an allocation).
            if (_watermarkDirty && !_signal.Wait(IdlePublishMs))
            {
                Publish();
            }
            _signal.Wait(MaintenanceWaitMs());
        }
        while (_gathers.TryDequeue(out var request))
        {
            Interlocked.Decrement(ref _queued);
            request.Abandon(GatherOutcome.Stopped);
        }
        while (_waiters.TryDequeue(out var waiter))
        {
            _waiting.Add(waiter);
        }
        foreach (var waiter in _waiting)
        {
            waiter.Stop();
        }
        _waiting.Clear();
    }

    /// <summary>One dynamic batch of waiting gathers: a read of all their rows, then their handler.</summary>
    private bool Serve()
    {
        if (_gathers.IsEmpty)
        {
            return false;
        }
        int requests = 0, rows = 0;
        long launchBy = 0;
        IGatheredBatchHandler? handler = null;
        var spin = new SpinWait();
        while (true)
        {
            if (_gathers.TryPeek(out var next) && (requests == 0 || (rows + next.Rows <= _serving.MaxBatchRows && next.Handler == handler)))
            {
                _gathers.TryDequeue(out _);
                Interlocked.Decrement(ref _queued);
                if (next.Cancellation.IsCancellationRequested || DateTime.UtcNow >= next.DeadlineUtc)
                {
                    var outcome = next.Cancellation.IsCancellationRequested ? GatherOutcome.Cancelled : GatherOutcome.DeadlineExceeded;
                    _servingMetrics.Abandoned(outcome == GatherOutcome.Cancelled ? "cancelled" : "deadline");
                    next.Abandon(outcome);
                    continue;
                }
                if (requests == 0)
                {
                    handler = next.Handler;
                    launchBy = next.EnqueuedTimestamp + _serving.MaxQueueDelayMicroseconds * Stopwatch.Frequency / 1_000_000;
                }
                next.Entities.AsSpan(0, next.Rows).CopyTo(_batchKeys.AsSpan(rows));
                _batch[requests++] = next;
                rows += next.Rows;
                continue;
            }
            // Triton's max queue delay: a batch that is not full may wait a little for company.
            if (requests == 0 || rows >= _serving.MaxBatchRows || !_gathers.IsEmpty || Stopwatch.GetTimestamp() >= launchBy)
            {
                break;
            }
            spin.SpinOnce(sleep1Threshold: -1);
        }
        if (requests == 0)
        {
            return true;
        }
        try
        {
            int width = _table.Width;
            var watermark = Publish();
            _table.Gather(_batchKeys.AsSpan(0, rows), AsOf(watermark), _batchFeatures.AsSpan(0, rows * width));
            _servingMetrics.Batch(rows);
            handler!.Handle(_batch.AsSpan(0, requests), _batchFeatures, width, watermark);
        }
        catch (Exception error)
        {
            ExecutorLog.ServingFailed(_logger, error);
            foreach (var request in _batch.AsSpan(0, requests))
            {
                request.Abandon(GatherOutcome.Stopped);
            }
        }
        finally
        {
            System.Array.Clear(_batch, 0, requests);
        }
        return true;
    }

    private bool ApplyOne()
    {
        // A growth in progress finishes first, a slice per turn: an apply must see one table. (When
        // stopping, the apply finishes it at once.)
        if ((_table.Growing && !_stopping) || !_applies.TryDequeue(out var work))
        {
            return false;
        }
        try
        {
            long started = Stopwatch.GetTimestamp();
            var result = work.Apply(_table);
            _applied.Advance(work.Offsets, result.NewestTimeMs);
            _watermarkDirty = true;
            work.AfterApply(_table, _publish);
            Record(result);
            _metrics.BatchApplied(result.Applied, Stopwatch.GetElapsedTime(started).TotalSeconds);
            work.Complete(result.Applied);
        }
        catch (Exception error)
        {
            work.Fail(error);
        }
        return true;
    }

    /// <summary>Wakes read-your-writes callers whose minimum the applied state now covers, and forgets those whose call ended.</summary>
    private void ReleaseWaiters()
    {
        while (_waiters.TryDequeue(out var added))
        {
            _waiting.Add(added);
        }
        int kept = 0;
        for (int i = 0; i < _waiting.Count; i++)
        {
            var waiter = _waiting[i];
            if (!waiter.Completed && !_applied.Covers(waiter.Minimum))
            {
                _waiting[kept++] = waiter;
                continue;
            }
            if (!waiter.Completed)
            {
                // Whoever is released reads the watermark next: it must already show what they waited for.
                Publish();
            }
            waiter.Release();
        }
        _waiting.RemoveRange(kept, _waiting.Count - kept);
    }

    private bool ReadOne()
    {
        if (!_reads.TryDequeue(out var work))
        {
            return false;
        }
        work.Run(_table, Publish());
        return true;
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
            ExecutorLog.EvictedIdlest(_logger, result.Evicted.Length, _table.Capacity);
        }
        for (int f = 0; f < result.Late.Length; f++)
        {
            if (result.Late[f] > 0)
            {
                _metrics.Late(_table.Plan.Definitions[f].Name, result.Late[f]);
            }
        }
    }

    private void Stop()
    {
        _stopping = true;
        _signal.Set();
        if (_started && Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }
    }

    public void Dispose()
    {
        _disposed = true;
        Stop();
        _table.Dispose();
        _signal.Dispose();
    }

    /// <summary>An apply over an Arrow record batch, for callers that hand the executor one batch at a time.</summary>
    private sealed class RecordBatchApply(RecordBatch batch) : ApplyWork
    {
        protected internal override ApplyResult Apply(FeatureTable table) =>
            table.Apply(new RecordBatchColumns(batch, table.Plan.NumericFields.Count));
    }

    private abstract class ReadWork
    {
        public abstract void Run(FeatureTable table, FeatureWatermark watermark);
    }

    private sealed class ReadWork<T>(Func<FeatureTable, FeatureWatermark, T> read) : ReadWork
    {
        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Run(FeatureTable table, FeatureWatermark watermark)
        {
            try
            {
                Completion.SetResult(read(table, watermark));
            }
            catch (Exception error)
            {
                Completion.SetException(error);
            }
        }
    }

    private readonly struct RecordBatchColumns(RecordBatch batch, int numeric) : IBatchColumns
    {
        public int Count => batch.Length;

        public ReadOnlySpan<ulong> Entities => ((UInt64Array)batch.Column(0)).Values;

        public ReadOnlySpan<long> Times => ((Int64Array)batch.Column(1)).Values;

        public ReadOnlySpan<float> Numeric(int column) => ((FloatArray)batch.Column(2 + column)).Values;

        public ReadOnlySpan<ulong> Keys(int column) => ((UInt64Array)batch.Column(2 + numeric + column)).Values;

        /// <summary>Arrow buffers of any origin: copied.</summary>
        public int PinnedStride => 0;
    }
}

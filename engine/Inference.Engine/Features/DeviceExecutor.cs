using System.Collections.Concurrent;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Features;

/// <summary>
/// The one owner of the accelerator and the feature table. Everything else sends it work and never
/// touches the device: serving gathers (batched dynamically), applies of micro-batches, the
/// trainer's point-in-time gathers and other reads, and maintenance (growth, capacity eviction, the
/// TTL scan) cut into slices. Its thread runs it all, a turn at a time under one lock (on a host
/// accelerator a Score caller may take a turn to serve, see <see cref="ServeHere"/>), so a read always
/// falls between two applies and reports the watermark of exactly the state it read.
/// </summary>
/// <remarks>
/// Each turn of the loop serves waiting Score requests, then runs at most one apply, one read and
/// one maintenance slice, serving again between them: a request waits at most for one unit of work
/// already running. When the device is idle a request is launched at once; requests that arrive
/// while it is busy go together in the next gather (up to <see cref="GatherLimits.MaxBatchRows"/>).
/// </remarks>
internal sealed partial class DeviceExecutor : IHostedService, IPageLocker, IDisposable
{
    private readonly DeviceContext _device;
    private readonly IOwnedPartitions? _ownership;
    private readonly FeatureTable _table;
    private readonly FeatureOptions _options;
    private readonly GatherLimits _serving;
    private readonly FeatureMetrics _metrics;
    private readonly IGatherMetrics _servingMetrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ConcurrentQueue<GatherRequest> _gathers = new();
    // A gather taken from the queue that opens the next batch (read and written under the turn only).
    private GatherRequest? _carried;
    private readonly Func<FeatureWatermark> _publish;
    private readonly ConcurrentQueue<ApplyWork> _applies = new();
    private readonly ConcurrentQueue<ReadWork> _reads = new();
    private readonly ConcurrentQueue<WatermarkWaiter> _waiters = new();
    private readonly List<WatermarkWaiter> _waiting = [];
    private readonly ManualResetEventSlim _signal = new(false, spinCount: 100);
    private readonly Thread _thread;
    // Held for each turn of the executor's loop, and by a Score caller that serves on its own thread (host accelerators).
    private readonly Lock _turn = new();
    private readonly GatherRequest[] _batch;
    private readonly ulong[] _batchKeys;
    private readonly float[] _batchFeatures;
    private readonly EmbeddingStore? _embeddings;
    private readonly ulong[] _batchIds = [];
    private readonly float[] _batchEmbeddings = [];
    private readonly ulong[] _batchLastKeys = [];
    private int _queued;
    private int _queuedReads;
    private int _watermarkWaiters;
    private volatile bool _stopping;
    private bool _started;
    private bool _disposed;

    private readonly WatermarkBuilder _applied = new();
    private FeatureWatermark _watermark = FeatureWatermark.Empty;
    private bool _watermarkDirty;
    private int _entities;
    private int _capacity;
    // In a pool: the ownership version last seen and the pool's newest event time (see PoolEventTimeMs).
    private long _ownershipVersion;
    private long _poolEventTimeMs;

    public DeviceExecutor(DeviceContext device, FeaturePlan plan, FeatureOptions options, GatherLimits serving, FeatureMetrics metrics, IGatherMetrics servingMetrics, TimeProvider time, ILogger<DeviceExecutor> logger, IOwnedPartitions? ownership = null,
        EmbeddingStore? embeddings = null)
    {
        _time = time;
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
        _embeddings = embeddings;
        if (embeddings is not null)
        {
            _batchIds = new ulong[batchRows * embeddings.Count];
            _batchEmbeddings = new float[batchRows * embeddings.Width];
            _batchLastKeys = new ulong[batchRows * plan.LastKeyFields.Count];
        }
        _entities = _table.Entities;
        _capacity = _table.Capacity;
        _nextTtlScan = Deadline.After(time, options.EvictionScanIntervalMs);
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
            _metrics.ObserveEntities(() => Volatile.Read(ref _entities));
            _servingMetrics.ObserveQueue(() => Volatile.Read(ref _queued));
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
    internal T OnDevice<T>(Func<T> work) =>
        _started && !_stopping && Thread.CurrentThread != _thread ? Read((_, _) => work()) : work();

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
            long started = _time.GetTimestamp();
            var result = work.Apply(_table);
            if (Replay is { } replay)
            {
                work.Journal(replay.Journal);
            }
            _applied.Advance(work.Offsets, result.NewestTimeMs);
            _watermarkDirty = true;
            work.AfterApply(_table, _publish);
            Record(result);
            _metrics.BatchApplied(result.Applied, _time.GetElapsedTime(started).TotalSeconds);
            work.Complete(result.Applied);
        }
        catch (Exception error)
        {
            work.Fail(error);
        }
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
        Replay?.Dispose();
        _embeddings?.Dispose();
        _signal.Dispose();
    }
}

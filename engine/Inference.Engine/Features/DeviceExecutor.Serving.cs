using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>The device executor's serving side: gathers queued for Score, reads between units of work, read-your-writes waiters; each bounded.</summary>
internal sealed partial class DeviceExecutor
{
    /// <summary>
    /// Queues a serving gather, and on a host accelerator serves it at once on this thread when the device is between
    /// turns (<see cref="ServeHere"/>). Returns false at once when <see cref="GatherLimits.MaxQueuedRequests"/>
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
        request.EnqueuedTimestamp = _time.GetTimestamp();
        _gathers.Enqueue(request);
        if (!ServeHere())
        {
            _signal.Set();
        }
        return true;
    }

    /// <summary>
    /// Completes when the applied state covers <paramref name="minimum"/> (every partition it names at
    /// least at its offset): read-your-writes for a caller that knows where its events landed.
    /// </summary>
    /// <remarks>Null, at once, when <see cref="GatherLimits.MaxWatermarkWaiters"/> calls wait already.</remarks>
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
    /// <see cref="GatherLimits.MaxQueuedReads"/> serving reads wait already.
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

    /// <summary>Runs <paramref name="read"/> on the executor and waits for it on an event, not a task (for dedicated threads such as the trainer's).</summary>
    public T Read<T>(Func<FeatureTable, FeatureWatermark, T> read)
    {
        var work = new BlockingReadWork<T>(read);
        _reads.Enqueue(work);
        _signal.Set();
        return work.Wait();
    }

    /// <summary>Whether a gather waits: one carried to the next batch, or one in the queue.</summary>
    private bool GathersWaiting => _carried is not null || !_gathers.IsEmpty;

    /// <summary>
    /// The next waiting gather: one taken from the queue earlier that did not fit its batch, else the queue's head.
    /// Taken, never peeked: a peek keeps the queue's segment from clearing the slots it hands out, and a segment
    /// that outlives a collection then holds every request queued after it (each call's whole graph: request,
    /// context, response) until an older generation is collected. Under load that was a third of all Score's
    /// allocations surviving each gen0 collection, and pauses of 8-20 ms.
    /// </summary>
    private GatherRequest? TakeGather()
    {
        if (_carried is { } carried)
        {
            _carried = null;
            return carried;
        }
        return _gathers.TryDequeue(out var next) ? next : null;
    }

    /// <summary>One dynamic batch of waiting gathers: a read of all their rows, then their handler.</summary>
    private bool Serve()
    {
        if (!GathersWaiting)
        {
            return false;
        }
        int requests = 0, rows = 0;
        long launchBy = 0;
        IGatheredBatchHandler? handler = null;
        var spin = new SpinWait();
        while (true)
        {
            if (TakeGather() is { } next)
            {
                if (requests > 0 && (rows + next.Rows > _serving.MaxBatchRows || next.Handler != handler))
                {
                    // It opens the next batch.
                    _carried = next;
                    break;
                }
                Interlocked.Decrement(ref _queued);
                if (next.Cancellation.IsCancellationRequested || _time.GetUtcNow().UtcDateTime >= next.DeadlineUtc)
                {
                    var outcome = next.Cancellation.IsCancellationRequested ? GatherOutcome.Cancelled : GatherOutcome.DeadlineExceeded;
                    _servingMetrics.Abandoned(outcome == GatherOutcome.Cancelled ? "cancelled" : "deadline");
                    next.Abandon(outcome);
                    continue;
                }
                if (requests == 0)
                {
                    handler = next.Handler;
                    launchBy = next.EnqueuedTimestamp + _serving.MaxQueueDelayMicroseconds * _time.TimestampFrequency / 1_000_000;
                }
                next.Entities.AsSpan(0, next.Rows).CopyTo(_batchKeys.AsSpan(rows));
                if (_embeddings is { } store)
                {
                    next.Ids.AsSpan(0, next.Rows * store.Count).CopyTo(_batchIds.AsSpan(rows * store.Count));
                }
                _batch[requests++] = next;
                rows += next.Rows;
                continue;
            }
            // Triton's max queue delay: a batch that is not full may wait a little for company.
            if (requests == 0 || rows >= _serving.MaxBatchRows || !_gathers.IsEmpty || _time.GetTimestamp() >= launchBy)
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
            _table.Gather(_batchKeys.AsSpan(0, rows), AsOf(watermark), _batchFeatures.AsSpan(0, rows * width), lastKeys: _batchLastKeys);
            if (_embeddings is { } embeddings)
            {
                embeddings.FillLastOf(_batchIds, rows, _batchLastKeys);
                embeddings.Lookup(_batchIds, rows, _batchEmbeddings);
            }
            _servingMetrics.Batch(rows);
            handler!.Handle(_batch.AsSpan(0, requests), _batchFeatures, width, _embeddings is null ? null : _batchEmbeddings, _embeddings is null ? null : _batchIds, watermark);
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

    private abstract class ReadWork
    {
        public abstract void Run(FeatureTable table, FeatureWatermark watermark);
    }

    /// <summary>A read whose caller blocks its own thread until the executor has run it.</summary>
    private sealed class BlockingReadWork<T>(Func<FeatureTable, FeatureWatermark, T> read) : ReadWork
    {
        private readonly BlockingResult<T> _result = new();

        public override void Run(FeatureTable table, FeatureWatermark watermark)
        {
            try
            {
                _result.Complete(read(table, watermark));
            }
            catch (Exception error)
            {
                _result.Fail(error);
            }
        }

        public T Wait() => _result.Wait();
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
}

namespace Inference.Engine.Features;

/// <summary>
/// The executor's loop, a turn at a time, and who may take a turn's serving: the executor's own thread, or on a host
/// accelerator a Score caller that finds the device between turns.
/// </summary>
internal sealed partial class DeviceExecutor
{
    /// <summary>Batches a caller serving on its own thread runs at most before it leaves the rest to the executor.</summary>
    private const int BatchesServedHere = 4;

    private void Run()
    {
        ExecutorLog.Started(_logger, _device.Description, _serving.MaxBatchRows, _serving.MaxQueueDelayMicroseconds, _serving.MaxQueuedRequests);
        while (true)
        {
            // Reset before looking: work queued after the look sets the signal again.
            _signal.Reset();
            bool worked;
            lock (_turn)
            {
                worked = Turn();
            }
            if (worked)
            {
                continue;
            }
            if (_stopping && _applies.IsEmpty && _reads.IsEmpty)
            {
                lock (_turn)
                {
                    Publish();
                }
                break;
            }
            // Idle: once no work has come for a moment, readers on other threads see the state as it
            // is (not at every short gap between batches of a backlog: a snapshot is an allocation).
            if (_watermarkDirty && !_signal.Wait(IdlePublishMs))
            {
                lock (_turn)
                {
                    Publish();
                }
            }
            _signal.Wait(MaintenanceWaitMs());
        }
        lock (_turn)
        {
            while (TakeGather() is { } request)
            {
                Interlocked.Decrement(ref _queued);
                request.Abandon(GatherOutcome.Stopped);
            }
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

    /// <summary>One turn: waiting Score requests, then at most one apply, one read and one maintenance slice, serving between them.</summary>
    private bool Turn()
    {
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
        }
        return worked;
    }

    /// <summary>
    /// On a host accelerator, a Score caller that finds the device between turns serves the waiting requests on its own
    /// thread, its own among them: no handoff to the executor's thread and back (on a busy machine each handoff waits for
    /// a core), and the same one-at-a-time order, since it holds the turn. False when the executor or another caller
    /// holds it (the executor serves them after its unit of work) and on CUDA, whose context stays on the executor's thread.
    /// </summary>
    private bool ServeHere()
    {
        if (!_device.IsHost || !_started || _stopping || !_turn.TryEnter())
        {
            return false;
        }
        try
        {
            if (_stopping)
            {
                return false;
            }
            for (int batch = 0; batch < BatchesServedHere && Serve(); batch++)
            {
            }
            if (GathersWaiting)
            {
                // What this caller left (more than its share of batches): the executor serves it.
                _signal.Set();
            }
            return true;
        }
        finally
        {
            _turn.Exit();
        }
    }
}

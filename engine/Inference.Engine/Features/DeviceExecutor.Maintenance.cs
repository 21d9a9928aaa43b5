using Inference.Engine.Pipeline;

namespace Inference.Engine.Features;

// Maintenance between batches, a bounded slice at a time: growth ahead of need (new arrays built
// beside the live ones, a slice of rows at a time, applies held back until the switch), capacity
// eviction of the idlest entities when the table is at its maximum, and the TTL scan.
internal sealed partial class DeviceExecutor
{
    /// <summary>Slots one maintenance slice scans: short enough that a waiting request barely notices.</summary>
    public const int SliceSlots = 16_384;

    private readonly EvictionScan _capacityScan = new("capacity");
    private readonly EvictionScan _ttlScan = new("ttl");
    private long _nextTtlScan;

    /// <summary>Free slots kept ahead of need: a full batch of new entities fits without evicting inside the apply.</summary>
    private int Headroom => _options.MaxBatchEvents;

    private int MaintenanceWaitMs() =>
        _options.EntityTtlMs > 0 ? Math.Clamp(Deadline.RemainingMs(_time, _nextTtlScan), 1, 1_000) : 1_000;

    /// <summary>Runs one slice of whatever maintenance is due; false when none is.</summary>
    private bool MaintainOne()
    {
        if (_stopping)
        {
            return false;
        }
        if (_capacityScan.Running)
        {
            ScanSlice(_capacityScan);
            return true;
        }
        if (_table.Growing || (_table.FreeSlots < Headroom && _table.BeginGrowth(_table.Entities + 2 * Headroom)))
        {
            // Applies wait until the switch; serving and reads go on between slices against the live table.
            if (_table.GrowthSlice(SliceSlots))
            {
                ExecutorLog.Grew(_logger, _table.Capacity, _table.Entities);
            }
            return true;
        }
        if (_table.FreeSlots < Headroom)
        {
            // At the maximum: evict about the idlest fraction, by a cutoff estimated from a sample.
            int target = Math.Max(Headroom, (int)(_table.Capacity * _table.Options.EvictionFraction));
            _capacityScan.Start(_table.IdleCutoff(target), target);
            ScanSlice(_capacityScan);
            return true;
        }
        if (!_ttlScan.Running && _options.EntityTtlMs > 0 && Deadline.RemainingMs(_time, _nextTtlScan) == 0)
        {
            // In a pool, idle as of the pool's newest event time: the entities a single node would evict.
            _ttlScan.Start(Math.Max(_applied.MaxEventTimeMs, PoolEventTimeMs) - _options.EntityTtlMs, int.MaxValue);
        }
        if (_ttlScan.Running)
        {
            ScanSlice(_ttlScan);
            if (!_ttlScan.Running)
            {
                _nextTtlScan = Deadline.After(_time, _options.EvictionScanIntervalMs);
            }
            return true;
        }
        return false;
    }

    private void AbortMaintenance()
    {
        _capacityScan.Stop();
        _ttlScan.Stop();
        _nextTtlScan = Deadline.After(_time, _options.EvictionScanIntervalMs);
    }

    /// <summary>Evicts, in the next slice of slots, entities idle since the scan's cutoff, up to what it still may.</summary>
    private void ScanSlice(EvictionScan scan)
    {
        var evicted = _table.EvictOlderThan(scan.Cutoff, scan.Cursor, SliceSlots, scan.Remaining);
        if (evicted.Length > 0)
        {
            _metrics.Evicted(evicted.Length, scan.Reason);
        }
        scan.Advance(SliceSlots, evicted.Length, _table.Capacity);
    }

    /// <summary>A walk over the table a slice at a time, evicting entities idle since a cutoff (for one reason).</summary>
    private sealed class EvictionScan(string reason)
    {
        public string Reason => reason;

        public int Cursor { get; private set; } = -1;

        public long Cutoff { get; private set; }

        /// <summary>Entities it may still evict.</summary>
        public int Remaining { get; private set; }

        public bool Running => Cursor >= 0;

        public void Start(long cutoff, int limit)
        {
            Cutoff = cutoff;
            Remaining = limit;
            Cursor = 0;
        }

        public void Advance(int slots, int evicted, int capacity)
        {
            Remaining -= evicted;
            Cursor += slots;
            if (Remaining <= 0 || Cursor >= capacity)
            {
                Stop();
            }
        }

        public void Stop() => Cursor = -1;
    }
}

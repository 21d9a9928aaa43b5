using Inference.Engine.Pipeline;

namespace Inference.Engine.Features;

// Maintenance between batches, a bounded slice at a time: growth ahead of need (new arrays built
// beside the live ones, a slice of rows at a time, applies held back until the switch), capacity
// eviction of the idlest entities when the table is at its maximum, and the TTL scan.
public sealed partial class DeviceExecutor
{
    /// <summary>Slots one maintenance slice scans: short enough that a waiting request barely notices.</summary>
    public const int SliceSlots = 16_384;

    private long _nextTtlScan;
    private int _ttlCursor = -1;
    private long _ttlCutoff;
    private int _evictCursor = -1;
    private long _evictCutoff;
    private int _evictTarget;

    /// <summary>Free slots kept ahead of need: a full batch of new entities fits without evicting inside the apply.</summary>
    private int Headroom => _options.MaxBatchEvents;

    private int MaintenanceWaitMs() =>
        _options.EntityTtlMs > 0 ? Math.Clamp(Deadline.RemainingMs(_nextTtlScan), 1, 1_000) : 1_000;

    /// <summary>Runs one slice of whatever maintenance is due; false when none is.</summary>
    private bool MaintainOne()
    {
        if (_stopping)
        {
            return false;
        }
        if (_evictCursor >= 0)
        {
            EvictSlice();
            return true;
        }
        if (_table.Growing || (_table.FreeSlots < Headroom && _table.BeginGrowth(_table.Entities + 2 * Headroom)))
        {
            // Applies wait until the switch; serving and reads go on between slices against the live table.
            if (_table.GrowthSlice(SliceSlots))
            {
                ExecutorLog.Grew(_logger, _table.Capacity, _table.Entities);
            }
            Volatile.Write(ref _entities, _table.Entities);
            return true;
        }
        if (_table.FreeSlots < Headroom)
        {
            // At the maximum: evict about the idlest fraction, by a cutoff estimated from a sample.
            _evictTarget = Math.Max(Headroom, (int)(_table.Capacity * _table.Options.EvictionFraction));
            _evictCutoff = _table.IdleCutoff(_evictTarget);
            _evictCursor = 0;
            EvictSlice();
            Volatile.Write(ref _entities, _table.Entities);
            return true;
        }
        if (_ttlCursor < 0 && _options.EntityTtlMs > 0 && Deadline.RemainingMs(_nextTtlScan) == 0)
        {
            _ttlCutoff = _watermark.MaxEventTimeMs - _options.EntityTtlMs;
            _ttlCursor = 0;
        }
        if (_ttlCursor >= 0)
        {
            var evicted = _table.EvictOlderThan(_ttlCutoff, _ttlCursor, SliceSlots, int.MaxValue);
            if (evicted.Length > 0)
            {
                _metrics.Evicted(evicted.Length, "ttl");
            }
            _ttlCursor += SliceSlots;
            if (_ttlCursor >= _table.Capacity)
            {
                _ttlCursor = -1;
                _nextTtlScan = Deadline.After(_options.EvictionScanIntervalMs);
            }
            Volatile.Write(ref _entities, _table.Entities);
            return true;
        }
        return false;
    }

    private void AbortMaintenance()
    {
        _evictCursor = -1;
        _ttlCursor = -1;
        _nextTtlScan = Deadline.After(_options.EvictionScanIntervalMs);
    }

    private void EvictSlice()
    {
        var evicted = _table.EvictOlderThan(_evictCutoff, _evictCursor, SliceSlots, _evictTarget);
        if (evicted.Length > 0)
        {
            _metrics.Evicted(evicted.Length, "capacity");
            _evictTarget -= evicted.Length;
        }
        _evictCursor += SliceSlots;
        if (_evictTarget <= 0 || _evictCursor >= _table.Capacity)
        {
            _evictCursor = -1;
        }
        Volatile.Write(ref _entities, _table.Entities);
    }
}

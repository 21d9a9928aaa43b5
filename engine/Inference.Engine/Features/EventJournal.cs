using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>
/// The newest events applied to the features (at most <c>Inference:Training:PointInTimeEvents</c>), as the table
/// took them: entity key, event time, numeric and key columns, chained per entity. A label that names no request
/// and whose entity has events after its time is joined with its entity's state as of that time by replaying its
/// journaled events up to it (<see cref="PointInTimeReplay"/>), when the journal holds every event the table
/// applied to the entity. Written and read on the device executor's thread only.
/// </summary>
internal sealed class EventJournal
{
    // How far ahead of the event being journaled its index line is prefetched: a few lookups' worth of a cache miss.
    private const int IndexLookahead = 16;

    private readonly int _capacity;
    private readonly int _numeric;
    private readonly int _keys;
    private readonly JournalIndex _index = new();
    private ulong[] _entities = [];
    private long[] _times = [];
    private float[] _values = [];
    private ulong[] _keyValues = [];
    private int[] _previous = [];
    private int[] _batchSlots = [];
    private int _next;
    private long _appended;

    /// <param name="capacity">Events at most: beyond it the oldest are forgotten.</param>
    /// <param name="numeric">Numeric columns of the plan.</param>
    /// <param name="keys">Key columns of the plan.</param>
    public EventJournal(int capacity, int numeric, int keys)
    {
        _capacity = capacity;
        _numeric = numeric;
        _keys = keys;
    }

    public int NumericColumns => _numeric;

    public int KeyColumns => _keys;

    /// <summary>Journals a batch the table applied, in its order.</summary>
    public void Append<TBatch>(in TBatch batch)
        where TBatch : IBatchColumns, allows ref struct
    {
        int n = batch.Count;
        var entities = batch.Entities;
        var times = batch.Times;
        if (_entities.Length < _capacity)
        {
            Allocate();
        }
        if (_batchSlots.Length < n)
        {
            _batchSlots = new int[n];
        }
        for (int i = 0; i < n; i++)
        {
            // The index line of an entity a few events ahead is asked for now, so it is in the cache when its turn comes.
            if (i + IndexLookahead < n)
            {
                _index.Prefetch(entities[i + IndexLookahead]);
            }
            int slot = NextSlot();
            _batchSlots[i] = slot;
            ulong entity = entities[i];
            _entities[slot] = entity;
            _times[slot] = times[i];
            _appended++;
            int entry = _index.FindOrAdd(entity);
            _previous[slot] = _index.Newest(entry);
            _index.Set(entry, slot, _index.Held(entry) + 1);
        }
        // Column by column: each column's span is read once.
        for (int c = 0; c < _numeric; c++)
        {
            var column = batch.Numeric(c);
            for (int i = 0; i < n; i++)
            {
                _values[(long)_batchSlots[i] * _numeric + c] = column[i];
            }
        }
        for (int c = 0; c < _keys; c++)
        {
            var column = batch.Keys(c);
            for (int i = 0; i < n; i++)
            {
                _keyValues[(long)_batchSlots[i] * _keys + c] = column[i];
            }
        }
    }

    /// <summary>
    /// The journaled events of <paramref name="entity"/> with a time at or before <paramref name="asOf"/>, oldest
    /// first, into <paramref name="slots"/>, when the journal holds exactly <paramref name="applied"/> events of it
    /// (every event the table applied to it); false otherwise (some are older than the journal).
    /// </summary>
    public bool TryCollect(ulong entity, long applied, long asOf, List<int> slots)
    {
        slots.Clear();
        int entry = _index.Find(entity);
        if (entry < 0 || _index.Held(entry) != applied)
        {
            return false;
        }
        for (int slot = _index.Newest(entry), held = 0; held < applied; held++)
        {
            if (_times[slot] <= asOf)
            {
                slots.Add(slot);
            }
            slot = _previous[slot];
        }
        slots.Reverse();
        return true;
    }

    public long Time(int slot) => _times[slot];

    public float Numeric(int slot, int column) => _values[(long)slot * _numeric + column];

    public ulong Key(int slot, int column) => _keyValues[(long)slot * _keys + column];

    /// <summary>The slot the next event goes to: a free one while the ring fills, then the oldest (forgotten first).</summary>
    private int NextSlot()
    {
        if (_next == _entities.Length)
        {
            _next = 0;
        }
        int slot = _next++;
        // The ring is filled in order and wraps only once full: a slot is taken once every slot was.
        if (_appended >= _entities.Length)
        {
            // The oldest event of its entity (the ring is in apply order): the entity holds one fewer.
            int entry = _index.Find(_entities[slot]);
            _index.Set(entry, _index.Newest(entry), _index.Held(entry) - 1);
        }
        return slot;
    }

    /// <summary>
    /// The whole ring at once, uninitialised: the memory is reserved, and pages are touched (resident) only
    /// as events fill them, so a short stream costs no more than it holds; no copy as it fills (a backlog
    /// grew the ring by doubling, copying it eight times on the device executor's thread).
    /// </summary>
    private void Allocate()
    {
        _entities = GC.AllocateUninitializedArray<ulong>(_capacity);
        _times = GC.AllocateUninitializedArray<long>(_capacity);
        _values = GC.AllocateUninitializedArray<float>(_capacity * _numeric);
        _keyValues = GC.AllocateUninitializedArray<ulong>(_capacity * _keys);
        _previous = GC.AllocateUninitializedArray<int>(_capacity);
    }
}

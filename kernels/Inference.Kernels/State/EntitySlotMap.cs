namespace Inference.Kernels.State;

/// <summary>
/// Entity hash → state-table slot, on the host. Slots are handed out in order up to the table's
/// capacity; once it is full, new entities get no slot and the caller counts their events as dropped.
/// Not thread-safe: the feature store calls it under the device gate.
/// </summary>
public sealed class EntitySlotMap
{
    private readonly Dictionary<ulong, int> _slots;

    public EntitySlotMap(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        Capacity = capacity;
        _slots = new Dictionary<ulong, int>(Math.Min(capacity, 1 << 20));
    }

    public int Capacity { get; }

    public int Count => _slots.Count;

    /// <summary>The slot of an entity seen before, or -1.</summary>
    public int Find(ulong entity) => _slots.TryGetValue(entity, out int slot) ? slot : -1;

    /// <summary>The entity's slot, assigning the next free one; -1 when the table is full.</summary>
    public int GetOrAdd(ulong entity)
    {
        if (_slots.TryGetValue(entity, out int slot))
        {
            return slot;
        }
        if (_slots.Count >= Capacity)
        {
            return -1;
        }
        slot = _slots.Count;
        _slots.Add(entity, slot);
        return slot;
    }
}

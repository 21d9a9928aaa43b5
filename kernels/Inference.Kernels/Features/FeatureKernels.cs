using ILGPU;
using ILGPU.Algorithms;

namespace Inference.Kernels.Features;

/// <summary>
/// The kernels of the feature table. All are grid-stride (a fixed number of threads, each looping
/// over elements) and index only slots the host or an earlier kernel produced.
/// </summary>
/// <remarks>
/// A batch runs: <see cref="InsertKeys"/> → <see cref="AllocateSlots"/> → <see cref="ResolveSlots"/>
/// (newest event time per slot, the first event per slot) → <see cref="AdvanceWindows"/> (lateness, ring epochs)
/// → <see cref="Reanchor"/> (per touched slot: decay to the new newest time, reset "last" values,
/// clear ring buckets that moved on) → <see cref="Accumulate"/>. Many events of one entity in a
/// batch meet in atomics: adds for sums and counts, min/max for extremes, max for "last" among the
/// events at the newest time and for HLL registers. Sums are doubles fed from float values, so
/// their partial sums are exact for realistic ranges and the result does not depend on the order
/// the atomics run in. An event is late for a window when it is older, by more than the allowed
/// lateness, than its entity's newest event before it in stream order: then a feature's value does not
/// depend on where the batches were cut (one node or a pool, a restart's replay). When no event of the
/// batch is older than an earlier one by more than the least lateness, that is the entity's newest after
/// the batch (no per-event input); otherwise the host gives each event its entity's newest earlier time
/// in the batch (<see cref="BatchView.Prior"/>) and <see cref="AllocateSlots"/> adds the time held before it.
/// </remarks>
internal static partial class FeatureKernels
{
    public static int Home(ulong key, int mask)
    {
        key ^= key >> 33;
        key *= 0xff51afd7ed558ccdUL;
        key ^= key >> 33;
        return (int)(key & (ulong)(uint)mask);
    }

    /// <summary>Per event: find its key's bucket (and slot, when held), inserting the key by compare-and-swap when absent.</summary>
    public static void InsertKeys(Index1D thread, int stride, HashView hash, BatchView batch)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            // Keys arrive as hashed; the kernels after this one read them as the table stores them.
            ulong key = FeatureTable.TableKey(batch.Keys[i]);
            batch.Keys[i] = key;
            int bucket = Home(key, hash.Mask);
            int won = 0;
            int slot = -1;
            for (int probe = 0; probe <= hash.Mask; probe++)
            {
                ulong current = hash.Entries[bucket].Key;
                if (current == key)
                {
                    // Held already (-1 while a new key of this batch waits for its slot); same line as the key.
                    slot = hash.Entries[bucket].Slot;
                    break;
                }
                if (current == 0)
                {
                    ulong previous = Atomic.CompareExchange(ref hash.Entries[bucket].Key, 0UL, key);
                    if (previous == 0)
                    {
                        // No slot until AllocateSlots gives one; counted so the host knows how many it needs.
                        hash.Entries[bucket].Slot = -1;
                        Atomic.Add(ref batch.Counters[2], 1);
                        won = 1;
                        break;
                    }
                    if (previous == key)
                    {
                        break;
                    }
                }
                bucket = (bucket + 1) & hash.Mask;
            }
            batch.Bucket[i] = bucket;
            batch.Won[i] = won;
            batch.Slot[i] = slot;
            batch.Shared[i] = 0;
        }
    }

    /// <summary>Per event that inserted a new key: pop a free slot and give it the initial state.</summary>
    public static void AllocateSlots(Index1D thread, int stride, HashView hash, BatchView batch, SlotView slots, FreeView free, PlanView plan)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            if (batch.Won[i] == 0)
            {
                // A held entity's newest time before the batch, read before ResolveSlots moves it on.
                int held = batch.Slot[i];
                if (batch.ExactLateness != 0 && held >= 0)
                {
                    batch.Prior[i] = XMath.Max(batch.Prior[i], slots.Heads[held].MaxTime);
                }
                continue;
            }
            int top = Atomic.Add(ref free.Top[0], -1) - 1;
            int slot = top >= 0 ? free.List[top] : -1;
            hash.Entries[batch.Bucket[i]].Slot = slot;
            if (slot < 0)
            {
                continue;
            }
            slots.Heads[slot].Count = 0;
            slots.Heads[slot].MaxTime = 0;
            slots.Heads[slot].Anchor = 0;
            slots.Heads[slot].Tag = 0;
            slots.Heads[slot].Key = batch.Keys[i];
            for (int c = 0; c < plan.LongStride; c++)
            {
                slots.Longs[(long)slot * plan.LongStride + c] = free.LongInit[c];
            }
            for (int c = 0; c < plan.DoubleStride; c++)
            {
                slots.Doubles[(long)slot * plan.DoubleStride + c] = free.DoubleInit[c];
            }
            for (int c = 0; c < plan.IntStride; c++)
            {
                slots.Registers[(long)slot * plan.IntStride + c] = 0;
            }
        }
    }

    /// <summary>
    /// Per event: its slot, its count, the newest event time per slot, whether it is the first event of
    /// the batch to touch its slot, and (on that first event) whether others share the slot. Flags per
    /// event rather than a list of slots: no counter that every thread contends for.
    /// </summary>
    public static void ResolveSlots(Index1D thread, int stride, int sequence, HashView hash, BatchView batch, SlotView slots)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            // Keys held before the batch found their slot on insert; new keys have one since AllocateSlots.
            int slot = batch.Slot[i];
            if (slot < 0)
            {
                slot = hash.Entries[batch.Bucket[i]].Slot;
                batch.Slot[i] = slot;
            }
            if (slot < 0)
            {
                batch.Touched[i] = 0;
                Atomic.Add(ref batch.Counters[1], 1);
                continue;
            }
            // The header's line is here anyway: count the event now rather than in Accumulate.
            Atomic.Add(ref slots.Heads[slot].Count, 1L);
            Atomic.Max(ref slots.Heads[slot].MaxTime, batch.Times[i]);
            // The first event of the batch on the slot stamps it with (sequence, its index); a later one
            // finds the stamp and marks that first event's slot as shared by several events.
            long mine = ((long)sequence << 32) | (uint)i;
            while (true)
            {
                long tag = slots.Heads[slot].Tag;
                if ((int)(tag >> 32) == sequence)
                {
                    batch.Touched[i] = 0;
                    batch.Shared[(int)(tag & 0xFFFF_FFFF)] = 1;
                    break;
                }
                if (Atomic.CompareExchange(ref slots.Heads[slot].Tag, tag, mine) == tag)
                {
                    batch.Touched[i] = 1;
                    break;
                }
            }
        }
    }

    /// <summary>Per bucket of [start, start + count): empty (key 0, no slot).</summary>
    public static void ClearHash(Index1D thread, int stride, SliceView range, HashView hash)
    {
        for (int i = thread; i < range.Count; i += stride)
        {
            int b = range.Start + i;
            hash.Entries[b].Key = 0;
            hash.Entries[b].Slot = -1;
        }
    }

    /// <summary>Per live slot of [start, start + count): insert its key into a fresh table (growth, and to clear tombstones).</summary>
    public static void Rebuild(Index1D thread, int stride, SliceView range, HashView hash, SlotView slots)
    {
        for (int i = thread; i < range.Count; i += stride)
        {
            int s = range.Start + i;
            ulong key = slots.Heads[s].Key;
            if (key == 0)
            {
                continue;
            }
            int bucket = Home(key, hash.Mask);
            for (int probe = 0; probe <= hash.Mask; probe++)
            {
                if (Atomic.CompareExchange(ref hash.Entries[bucket].Key, 0UL, key) == 0)
                {
                    hash.Entries[bucket].Slot = s;
                    break;
                }
                bucket = (bucket + 1) & hash.Mask;
            }
        }
    }

    /// <summary>
    /// Per slot of [start, start + count): list it as a victim (up to the limit) when it holds an entity
    /// whose newest event is older than the cutoff and that is not pinned (an entity of the batch that
    /// needs the room). The victim counter goes on past the limit: it tells how many qualified.
    /// </summary>
    public static void SelectVictims(Index1D thread, int stride, SliceView slice, SlotView slots, VictimView victims)
    {
        for (int i = thread; i < slice.Count; i += stride)
        {
            int s = slice.Start + i;
            if (slots.Heads[s].Key == 0 || slots.Heads[s].MaxTime >= slice.Cutoff || (int)(slots.Heads[s].Tag >> 32) == slice.Pin)
            {
                continue;
            }
            int at = Atomic.Add(ref victims.Count[0], 1);
            if (at < victims.Limit)
            {
                victims.Slots[at] = s;
            }
        }
    }

    /// <summary>
    /// Per victim: replace its hash entry by a tombstone (probes go on past it), forget the entity, report
    /// its key and push the slot onto the free stack.
    /// </summary>
    public static void Evict(Index1D thread, int stride, int count, VictimView victims, HashView hash, SlotView slots, FreeView free)
    {
        for (int i = thread; i < count; i += stride)
        {
            int slot = victims.Slots[i];
            ulong key = slots.Heads[slot].Key;
            int bucket = Home(key, hash.Mask);
            for (int probe = 0; probe <= hash.Mask; probe++)
            {
                if (hash.Entries[bucket].Key == key)
                {
                    hash.Entries[bucket].Slot = -1;
                    hash.Entries[bucket].Key = FeatureTable.Tombstone;
                    break;
                }
                bucket = (bucket + 1) & hash.Mask;
            }
            victims.Keys[i] = key;
            slots.Heads[slot].Key = 0;
            slots.Heads[slot].Count = 0;
            free.List[Atomic.Add(ref free.Top[0], 1)] = slot;
        }
    }

    /// <summary>Per event whose entity the table holds: pin its slot (eviction passes it over). Pins are negative; batch sequences positive.</summary>
    public static void Pin(Index1D thread, int stride, int pin, HashView hash, BatchView batch, SlotView slots)
    {
        for (int i = thread; i < batch.Count; i += stride)
        {
            int slot = hash.Entries[batch.Bucket[i]].Slot;
            if (slot >= 0)
            {
                slots.Heads[slot].Tag = (long)pin << 32;
            }
        }
    }

    /// <summary>Per sample: the newest event time of every step-th slot, or long.MaxValue for an empty one.</summary>
    public static void SampleTimes(Index1D thread, int stride, int samples, int step, SlotView slots, ArrayView<long> output)
    {
        for (int i = thread; i < samples; i += stride)
        {
            int s = i * step;
            output[i] = slots.Heads[s].Key != 0 ? slots.Heads[s].MaxTime : long.MaxValue;
        }
    }

    /// <summary>An add: plain when the event is its slot's only one in the batch, else atomic.</summary>
    private static void Add(ref double target, double value, bool alone)
    {
        if (alone)
        {
            target += value;
        }
        else
        {
            Atomic.Add(ref target, value);
        }
    }

    private static void Min(ref double target, double value, bool alone)
    {
        if (!alone)
        {
            Atomic.Min(ref target, value);
        }
        else if (value < target)
        {
            target = value;
        }
    }

    private static void Max(ref double target, double value, bool alone)
    {
        if (!alone)
        {
            Atomic.Max(ref target, value);
        }
        else if (value > target)
        {
            target = value;
        }
    }

    private static bool IsWindow(int kind) =>
        kind == (int)Aggregation.WindowCount || kind == (int)Aggregation.WindowSum || kind == (int)Aggregation.WindowMean;
}

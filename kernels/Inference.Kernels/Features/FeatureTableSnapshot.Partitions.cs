using System.Runtime.InteropServices;

namespace Inference.Kernels.Features;

/// <summary>
/// Moving entities between pool workers by events partition (each key carries its partition, see
/// <see cref="EntityKey.PartitionOf"/>): on host copies of the table, between two applies, at a rebalance.
/// </summary>
public sealed partial record FeatureTableSnapshot
{
    private const int TagOffset = 32;

    /// <summary>The entities of <paramref name="partitions"/> (of <paramref name="partitionCount"/>) in this snapshot.</summary>
    public int CountIn(IReadOnlySet<int> partitions, int partitionCount)
    {
        int count = 0;
        for (int slot = 0; slot < Capacity; slot++)
        {
            ulong key = KeyAt(slot);
            count += key != 0 && partitions.Contains(EntityKey.PartitionOf(key, partitionCount)) ? 1 : 0;
        }
        return count;
    }

    /// <summary>A copy with the entities of <paramref name="partitions"/> freed (their slots back on the free stack).</summary>
    public FeatureTableSnapshot WithoutPartitions(IReadOnlySet<int> partitions, int partitionCount)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        var heads = (byte[])Heads.Clone();
        var free = new List<int>(FreeSlots);
        for (int slot = 0; slot < Capacity; slot++)
        {
            ulong key = KeyAt(slot);
            if (key != 0 && partitions.Contains(EntityKey.PartitionOf(key, partitionCount)))
            {
                heads.AsSpan(slot * HeadBytes, HeadBytes).Clear();
                free.Add(slot);
            }
        }
        return this with { Heads = heads, FreeSlots = [.. free] };
    }

    /// <summary>
    /// A copy that also holds <paramref name="source"/>'s entities of <paramref name="partitions"/> (taken
    /// under the same plan), each in a free slot, growing the slots when too few are free. Entities of those
    /// partitions must not be here already (drop them first).
    /// </summary>
    public FeatureTableSnapshot WithEntitiesOf(FeatureTableSnapshot source, IReadOnlySet<int> partitions, int partitionCount)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(partitions);
        if (source.PlanFingerprint != PlanFingerprint)
        {
            throw new InvalidOperationException("The source was taken under other feature declarations.");
        }
        var taken = new List<int>();
        for (int slot = 0; slot < source.Capacity; slot++)
        {
            ulong key = source.KeyAt(slot);
            if (key != 0 && partitions.Contains(EntityKey.PartitionOf(key, partitionCount)))
            {
                taken.Add(slot);
            }
        }
        int longs = PerSlot(Longs.LongLength), doubles = PerSlot(Doubles.LongLength), registers = PerSlot(Registers.LongLength);
        int capacity = Capacity;
        var free = new List<int>(FreeSlots);
        if (free.Count < taken.Count)
        {
            // Grown: the new slots join the free stack, lowest on top (taken first).
            int grown = Math.Max(Capacity * 2, Capacity + taken.Count - free.Count);
            for (int slot = grown - 1; slot >= Capacity; slot--)
            {
                free.Add(slot);
            }
            capacity = grown;
        }
        var heads = Resized(Heads, (long)capacity * HeadBytes);
        var longColumn = Resized(Longs, (long)capacity * longs);
        var doubleColumn = Resized(Doubles, (long)capacity * doubles);
        var registerColumn = Resized(Registers, (long)capacity * registers);
        foreach (int from in taken)
        {
            int to = free[^1];
            free.RemoveAt(free.Count - 1);
            source.Heads.AsSpan(from * HeadBytes, HeadBytes).CopyTo(heads.AsSpan(to * HeadBytes, HeadBytes));
            // Not touched by any batch of this table yet.
            heads.AsSpan(to * HeadBytes + TagOffset, sizeof(long)).Clear();
            source.Longs.AsSpan(from * longs, longs).CopyTo(longColumn.AsSpan(to * longs, longs));
            source.Doubles.AsSpan(from * doubles, doubles).CopyTo(doubleColumn.AsSpan(to * doubles, doubles));
            source.Registers.AsSpan(from * registers, registers).CopyTo(registerColumn.AsSpan(to * registers, registers));
        }
        return this with { Capacity = capacity, Heads = heads, Longs = longColumn, Doubles = doubleColumn, Registers = registerColumn, FreeSlots = [.. free] };
    }

    private static int HeadBytes => HeadWords * sizeof(ulong);

    private ulong KeyAt(int slot) => MemoryMarshal.Read<ulong>(Heads.AsSpan(slot * HeadBytes, sizeof(ulong)));

    private int PerSlot(long length) => Capacity == 0 ? 0 : checked((int)(length / Capacity));

    private static T[] Resized<T>(T[] column, long length)
    {
        if (column.LongLength == length)
        {
            return (T[])column.Clone();
        }
        var resized = new T[length];
        column.AsSpan().CopyTo(resized);
        return resized;
    }
}

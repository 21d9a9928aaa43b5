using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Inference.Kernels.Features;

/// <summary>
/// Every entity's state of a <see cref="FeatureTable"/> as host arrays: the slot columns, the free-slot
/// stack and the counters the kernels compare against, tagged with the plan it belongs to. The hash
/// table is not kept: a restore rebuilds it from the slots. (The building block of checkpoints.)
/// </summary>
public sealed partial record FeatureTableSnapshot(
    string PlanFingerprint,
    int Capacity,
    int Sequence,
    int PinMark,
    byte[] Heads,
    long[] Longs,
    double[] Doubles,
    int[] Registers,
    int[] FreeSlots)
{
    /// <summary>64-bit words per slot in <see cref="Heads"/>.</summary>
    public const int HeadWords = 8;

    /// <summary>
    /// What the first words of a slot's head hold, in order: the entity key (0: free), events applied,
    /// newest event time, the time decayed values refer to, and the last batch that touched it. The
    /// remaining words are padding (always zero).
    /// </summary>
    public static readonly IReadOnlyList<string> HeadColumns = ["key", "count", "max_time", "anchor", "tag"];

    /// <summary>Entities held.</summary>
    public int Entities => Capacity - FreeSlots.Length;
}

public sealed partial class FeatureTable
{
    /// <summary>A digest of the plan's declarations: state taken under one plan is only restored under the same plan.</summary>
    public static string Fingerprint(FeaturePlan plan) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(plan.Definitions)
            + (plan.LastKeyFields.Count == 0 ? "" : "\nlast keys: " + JsonSerializer.Serialize(plan.LastKeyFields)))));

    /// <summary>
    /// Host arrays for a snapshot of a table of <paramref name="capacity"/> slots under <paramref name="plan"/>,
    /// every page written once: the copy between two applies then writes warm memory (no page faults,
    /// no allocation inside the pause). Pass it to <see cref="Snapshot"/> as the one to reuse.
    /// </summary>
    public static FeatureTableSnapshot AllocateSnapshot(FeaturePlan plan, int capacity)
    {
        ArgumentNullException.ThrowIfNull(plan);
        var heads = GC.AllocateUninitializedArray<byte>(capacity * Marshal.SizeOf<SlotHeader>());
        var longs = GC.AllocateUninitializedArray<long>(capacity * plan.LongInit.Length);
        var doubles = GC.AllocateUninitializedArray<double>(capacity * plan.DoubleInit.Length);
        var registers = GC.AllocateUninitializedArray<int>(capacity * plan.IntStateWidth);
        heads.AsSpan().Clear();
        longs.AsSpan().Clear();
        doubles.AsSpan().Clear();
        registers.AsSpan().Clear();
        return new FeatureTableSnapshot(Fingerprint(plan), capacity, 0, 0, heads, longs, doubles, registers, []);
    }

    /// <summary>
    /// Copies every entity's state to the host (a growth in progress completes first). Between applies
    /// only. The arrays of <paramref name="reuse"/>, a snapshot no longer needed, are written over when
    /// their sizes fit (no fresh gigabytes to fault in and collect on every checkpoint).
    /// </summary>
    public FeatureTableSnapshot Snapshot(FeatureTableSnapshot? reuse = null)
    {
        if (Growing)
        {
            CompleteGrowth();
        }
        int top = ReadFreeTop();
        static T[] Fit<T>(T[]? old, long length) => old is not null && old.LongLength == length ? old : new T[length];
        var heads = Fit(reuse?.Heads, (long)Capacity * Marshal.SizeOf<SlotHeader>());
        Download(_heads, MemoryMarshal.Cast<byte, SlotHeader>(heads.AsSpan()));
        var longs = Fit(reuse?.Longs, (long)Capacity * Plan.LongInit.Length);
        var doubles = Fit(reuse?.Doubles, (long)Capacity * Plan.DoubleInit.Length);
        var registers = Fit(reuse?.Registers, (long)Capacity * Plan.IntStateWidth);
        var free = new int[top];
        Download(_longs, longs);
        Download(_doubles, doubles);
        Download(_registers, registers);
        Download(_freeList, free);
        return new FeatureTableSnapshot(Fingerprint(Plan), Capacity, _sequence, _pinMark, heads, longs, doubles, registers, free);
    }

    /// <summary>
    /// Replaces every entity's state with <paramref name="snapshot"/>'s (taken under the same plan, at
    /// most this table's maximum capacity) and rebuilds the hash table from it.
    /// </summary>
    public void Restore(FeatureTableSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        if (snapshot.PlanFingerprint != Fingerprint(Plan))
        {
            throw new InvalidOperationException("The snapshot was taken under other feature declarations; its state cannot be read under these.");
        }
        if (snapshot.Capacity > _options.MaxCapacity)
        {
            throw new InvalidOperationException($"The snapshot holds {snapshot.Capacity} slots; this table takes at most {_options.MaxCapacity}.");
        }
        if (snapshot.Heads.Length != snapshot.Capacity * Marshal.SizeOf<SlotHeader>()
            || snapshot.Longs.LongLength != (long)snapshot.Capacity * Plan.LongInit.Length
            || snapshot.Doubles.LongLength != (long)snapshot.Capacity * Plan.DoubleInit.Length
            || snapshot.Registers.LongLength != (long)snapshot.Capacity * Plan.IntStateWidth
            || snapshot.FreeSlots.Length > snapshot.Capacity)
        {
            throw new InvalidDataException("The snapshot's columns do not match its capacity.");
        }
        _growth?.Dispose();
        _growth = null;
        DisposeSlots();
        _heads = AllocateRows<SlotHeader>(snapshot.Capacity, 1);
        _longs = AllocateRows<long>(snapshot.Capacity, Plan.LongInit.Length);
        _doubles = AllocateRows<double>(snapshot.Capacity, Plan.DoubleInit.Length);
        _registers = AllocateRows<int>(snapshot.Capacity, Plan.IntStateWidth);
        _freeList = _device.Accelerator.Allocate1D<int>(snapshot.Capacity);
        _freeTop = _device.Accelerator.Allocate1D<int>(1);
        Capacity = snapshot.Capacity;
        Upload(_heads, MemoryMarshal.Cast<byte, SlotHeader>(snapshot.Heads.AsSpan()));
        Upload(_longs, snapshot.Longs);
        Upload(_doubles, snapshot.Doubles);
        Upload(_registers, snapshot.Registers);
        SetFreeSlots(snapshot.FreeSlots);
        _sequence = snapshot.Sequence;
        _pinMark = snapshot.PinMark;
        RebuildHash();
    }
}

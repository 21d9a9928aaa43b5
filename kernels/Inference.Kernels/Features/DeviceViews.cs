using ILGPU;

namespace Inference.Kernels.Features;

/// <summary>
/// One declared feature as the kernels read it: one load per feature per event, its fields then plain
/// reads (see <see cref="FeaturePlan"/> for their meaning).
/// </summary>
internal struct FeatureDescriptor
{
    public int Kind;
    public int Source;
    public int Denominator;
    public int LongOffset;
    public int DoubleOffset;
    public int IntOffset;
    public int Size;
    public int WindowBuckets;
    public int Transform;
    public int Numeric;
    /// <summary>ln 2 / half-life: a decay factor is exp(−Δt · rate). Math.Exp runs at host speed on the CPU backend and maps to the device's exp.</summary>
    public double DecayRate;
    public double BucketWidth;
    public double Lateness;
    public double Default;
}

/// <summary>The compiled feature plan on the device (see <see cref="FeaturePlan"/> for the row layout).</summary>
internal struct PlanView
{
    public ArrayView<FeatureDescriptor> Descriptors;
    public int Features;
    public int LongStride;
    public int DoubleStride;
    public int IntStride;
    public int ReadsAnchor;             // 1 when a feature reads the anchor time (decayed, last, windowed)
}

/// <summary>
/// One entity slot's own columns, together in one 64-byte cache line so that the kernels that read
/// them touch one line per entity (the padding keeps a header from straddling two lines).
/// </summary>
internal struct SlotHeader
{
    /// <summary>The entity key (0: the slot is free).</summary>
    public ulong Key;

    /// <summary>Events applied.</summary>
    public long Count;

    /// <summary>The newest event time applied.</summary>
    public long MaxTime;

    /// <summary>The time decayed values and "last" refer to (the newest time when the entity was last touched).</summary>
    public long Anchor;

    /// <summary>
    /// The last batch that touched the slot: its sequence (high 32 bits) and the index of its first event
    /// there (low 32 bits); or a negative eviction pin in the high bits.
    /// </summary>
    public long Tag;

    /// <summary>Padding to 64 bytes (explicit fields: ILGPU lays out structs itself and would not honour a declared size).</summary>
    public long Reserved1;

    public long Reserved2;

    public long Reserved3;
}

/// <summary>One bucket of the key → slot hash table: key 0 is empty, <see cref="FeatureTable.Tombstone"/> evicted.</summary>
internal struct HashEntry
{
    public ulong Key;

    /// <summary>The key's slot, or -1 (none yet, or evicted). Alignment pads the entry to 16 bytes.</summary>
    public int Slot;
}

/// <summary>Per-slot state: the headers, then each feature's longs, doubles and HLL registers (row-major by slot).</summary>
internal struct SlotView
{
    public ArrayView<SlotHeader> Heads;
    public ArrayView<long> Longs;
    public ArrayView<double> Doubles;
    public ArrayView<int> Registers;
}

/// <summary>Open-addressing entity-key → slot table; key 0 marks an empty bucket.</summary>
internal struct HashView
{
    public ArrayView<HashEntry> Entries;
    public int Mask;
}

/// <summary>The free-slot stack and the initial state rows a new slot is given.</summary>
internal struct FreeView
{
    public ArrayView<int> List;
    public ArrayView<int> Top;
    public ArrayView<long> LongInit;
    public ArrayView<double> DoubleInit;
}

/// <summary>One batch of events on the device, with per-event scratch and per-batch counters.</summary>
internal struct BatchView
{
    public ArrayView<ulong> Keys;
    public ArrayView<long> Times;
    public ArrayView<float> Numeric;    // field-major: column c of event i at c * Count + i
    public ArrayView<ulong> KeyColumns; // field-major, hashed key fields
    public ArrayView<int> Bucket;
    public ArrayView<int> Won;
    public ArrayView<int> Slot;
    public ArrayView<int> Touched;      // per event: 1 for the first event of the batch on its slot
    public ArrayView<int> Shared;       // per first event: 1 when other events of the batch share its slot
    public ArrayView<int> Counters;     // [1] events without a slot, [2] keys new to the table
    public ArrayView<long> Late;        // per feature
    public int Count;
}

/// <summary>Rows to read: their keys (and slots, for lookups), per-row read times (point-in-time reads), and the outputs.</summary>
internal struct ReadView
{
    public ArrayView<ulong> Keys;
    public ArrayView<int> Slots;
    public ArrayView<long> Times;
    public ArrayView<float> Output;
    public ArrayView<int> Inexact;
    public int Rows;
    public int PerRowTime;
    public long Now;
    public int ApplyTransform;
}

/// <summary>A range of slots to scan for eviction: those older than the cutoff and not pinned.</summary>
internal struct SliceView
{
    public int Start;
    public int Count;
    public long Cutoff;
    public int Pin;
}

/// <summary>Slots chosen for eviction (up to the limit), how many qualified, and the keys they held.</summary>
internal struct VictimView
{
    public ArrayView<int> Slots;
    public ArrayView<ulong> Keys;
    public ArrayView<int> Count;
    public int Limit;
}

using System.Diagnostics;
using System.Runtime.CompilerServices;
using ILGPU;

namespace Inference.Kernels.Features;

/// <summary>
/// One declared feature as the kernels read it: one load per feature per event, its fields then plain
/// reads. Built by <see cref="FeaturePlan"/>.
/// </summary>
internal struct FeatureDescriptor
{
    public int Kind;            // the Aggregation
    public int Source;          // distinct count: key column; ratio: numerator feature
    public int Denominator;     // ratio: denominator feature
    public int LongOffset;      // the feature's first long in a slot's long state
    public int DoubleOffset;    // ... in its double state
    public int IntOffset;       // ... in its int (HLL register) state
    public int Size;            // window: ring buckets; distinct count: HLL precision
    public int WindowBuckets;   // window: buckets in the window
    public int Transform;       // the FeatureTransform
    public int Numeric;         // the numeric column read, -1 for none
    public double DecayRate;    // ln 2 / half-life: a decay factor is exp(−Δt · rate)
    public double BucketWidth;  // window: bucket width (ms)
    public double Lateness;     // window: allowed lateness (ms)
    public double Default;      // the value of an entity without one
}

/// <summary>The compiled feature plan on the device.</summary>
internal struct PlanView
{
    public Column<FeatureDescriptor> Descriptors;
    public int Features;                // declared features (model inputs)
    public int StateFeatures;           // descriptors: the features, then the last keys
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
    public Column<SlotHeader> Heads;
    public Column<long> Longs;
    public Column<double> Doubles;
    public Column<int> Registers;
}

/// <summary>Open-addressing entity-key → slot table; key 0 marks an empty bucket.</summary>
internal struct HashView
{
    public Column<HashEntry> Entries;
    public int Mask;
}

/// <summary>The free-slot stack and the initial state rows a new slot is given.</summary>
internal struct FreeView
{
    public Column<int> List;
    public Column<int> Top;
    public Column<long> LongInit;
    public Column<double> DoubleInit;
}

/// <summary>One batch of events on the device, with per-event scratch and per-batch counters.</summary>
internal struct BatchView
{
    public Column<ulong> Keys;
    public Column<long> Times;
    public Column<float> Numeric;    // field-major: column c of event i at c * ColumnStride + i
    public Column<ulong> KeyColumns; // field-major, hashed key fields, same stride
    public int ColumnStride;         // Count when uploaded; the caller's stride when read in place
    public Column<int> Bucket;
    public Column<int> Won;
    public Column<int> Slot;
    public Column<int> Touched;      // per event: 1 for the first event of the batch on its slot
    public Column<int> Shared;       // per first event: 1 when other events of the batch share its slot
    public Column<int> Counters;     // [1] events without a slot, [2] keys new to the table
    public Column<long> Late;        // per feature
    public Column<long> Prior;       // per event, when ExactLateness: its entity's newest time before it (stream order)
    public int ExactLateness;        // 1: lateness is judged against Prior; 0: against the newest time after the batch
    public int Count;
}

/// <summary>Rows to read: their keys (and slots, for lookups), per-row read times (point-in-time reads), and the outputs.</summary>
internal struct ReadView
{
    public Column<ulong> Keys;
    public Column<int> Slots;
    public Column<long> Times;
    public Column<float> Output;
    public Column<int> Inexact;
    public Column<ulong> LastKeys;      // per row, the plan's last keys (0: none)
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
    public Column<int> Slots;
    public Column<ulong> Keys;
    public Column<int> Count;
    public int Limit;
}

/// <summary>
/// A device buffer as the kernels index it. On CUDA and the simulator it is the ILGPU view. On the
/// CPU backend it also carries the buffer's host address, and an access is a plain load from it: an
/// ILGPU view access on the host checks its bounds and its buffer every time (~2.5 ns), several times
/// the load itself, and the kernels make dozens per event. (The host branch is compiled by ILGPU too
/// but never taken on a device: there the address is 0.)
/// </summary>
internal readonly struct Column<T>(ArrayView<T> view, long host, long hostLength)
    where T : unmanaged
{
    public readonly ArrayView<T> View = view;

    public readonly long Host = host;

    /// <summary>Elements at <see cref="Host"/> (host memory outside any ILGPU buffer has no view to ask).</summary>
    public readonly long HostLength = hostLength;

    public Column(ArrayView<T> view, long host)
        : this(view, host, view.Length)
    {
    }

    public unsafe ref T this[long index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if (Host != 0)
            {
                // Debug builds (the tests) keep the bounds check that release builds trade for speed.
                Debug.Assert((ulong)index < (ulong)HostLength, "Kernel index out of range.");
                return ref ((T*)Host)[index];
            }
            return ref View[index];
        }
    }
}

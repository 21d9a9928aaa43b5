using ILGPU;

namespace Inference.Kernels.Features;

/// <summary>The compiled feature plan on the device (see <see cref="FeaturePlan"/> for the row layout).</summary>
internal struct PlanView
{
    public ArrayView<int> Ints;
    public ArrayView<double> Doubles;
    public int Features;
    public int LongStride;
    public int DoubleStride;
    public int IntStride;
}

/// <summary>Per-slot state: the entity columns, then each feature's longs, doubles and HLL registers (row-major by slot).</summary>
internal struct SlotView
{
    public ArrayView<long> Count;
    public ArrayView<long> MaxTime;
    public ArrayView<long> Anchor;
    public ArrayView<ulong> Key;
    public ArrayView<int> Touch;
    public ArrayView<long> Longs;
    public ArrayView<double> Doubles;
    public ArrayView<int> Registers;
}

/// <summary>Open-addressing entity-key → slot table; key 0 marks an empty bucket.</summary>
internal struct HashView
{
    public ArrayView<ulong> Keys;
    public ArrayView<int> SlotOf;
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
    public ArrayView<int> Touched;
    public ArrayView<int> Counters;     // [0] touched slots, [1] events without a slot
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

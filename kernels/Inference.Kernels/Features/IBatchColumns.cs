namespace Inference.Kernels.Features;

/// <summary>
/// The columns of a batch of events: entity keys, event times, one float column per numeric field
/// and one hashed column per key field of the plan, all as long as the batch. Implemented by
/// structs (an Arrow record batch view, arrays) so the apply path makes no interface calls.
/// </summary>
public interface IBatchColumns
{
    int Count { get; }

    ReadOnlySpan<ulong> Entities { get; }

    ReadOnlySpan<long> Times { get; }

    ReadOnlySpan<float> Numeric(int column);

    ReadOnlySpan<ulong> Keys(int column);

    /// <summary>
    /// When the columns live in memory that stays put for the whole apply (native or pinned) and the
    /// numeric columns, like the key columns, follow one another at this distance in elements, that
    /// distance; 0 otherwise. On the CPU backend such a batch is read in place, not copied.
    /// </summary>
    int PinnedStride { get; }
}

/// <summary>Batch columns over plain arrays (tests, benchmarks, the oracle's callers).</summary>
public readonly struct ArrayBatch(ulong[] entities, long[] times, float[][] numeric, ulong[][] keys) : IBatchColumns
{
    public int Count => entities.Length;

    public ReadOnlySpan<ulong> Entities => entities;

    public ReadOnlySpan<long> Times => times;

    public ReadOnlySpan<float> Numeric(int column) => numeric[column];

    public ReadOnlySpan<ulong> Keys(int column) => keys[column];

    /// <summary>Separate managed arrays: copied.</summary>
    public int PinnedStride => 0;
}

/// <summary>What applying one batch did (no allocation: <see cref="Late"/> is the table's own buffer, valid until its next apply).</summary>
/// <param name="Applied">Events applied.</param>
/// <param name="Dropped">Events that found no slot (should be none: the table grows or evicts first).</param>
/// <param name="Late">Per feature, events older than its allowed lateness, not applied to it.</param>
/// <param name="Evicted">Entities evicted to make room before this batch (idlest first).</param>
/// <param name="NewestTimeMs">The newest event time in the batch (0 for an empty one).</param>
public readonly record struct ApplyResult(int Applied, int Dropped, long[] Late, ulong[] Evicted, long NewestTimeMs);

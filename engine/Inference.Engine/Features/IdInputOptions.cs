namespace Inference.Engine.Features;

/// <summary>Where an id input's value comes from.</summary>
public enum IdSource
{
    /// <summary>The field of the same name: a Score row's <c>ids</c> entry, a label's field.</summary>
    Request,

    /// <summary>The entity itself (its key).</summary>
    Entity,

    /// <summary>
    /// The value of an event field (<see cref="IdInputOptions.Field"/>) in the entity's newest event by event
    /// time (ties: the larger hashed value), kept per entity by the feature table; an entity without events
    /// reads the id of no value (a row of its own, learned like any id).
    /// </summary>
    LastOf,
}

/// <summary>
/// One id input of a model over ids (<c>Inference:Model:Ids:{n}</c>): an embedding table on the
/// accelerator with a row per id, read next to the declared features when a row is scored or learned.
/// </summary>
public sealed class IdInputOptions
{
    public const int DefaultDimension = 16;
    public const int DefaultCapacity = 1 << 20;

    /// <summary>The input's name; for <see cref="IdSource.Request"/>, the Score row's <c>ids</c> key and the label field that carry it.</summary>
    public string Name { get; set; } = "";

    public IdSource Source { get; set; } = IdSource.Request;

    /// <summary>For <see cref="IdSource.LastOf"/>: the event field (every event must carry it, as the fields features aggregate).</summary>
    public string? Field { get; set; }

    /// <summary>The event fields of the <see cref="IdSource.LastOf"/> inputs, each once, in declaration order: the feature table's last keys.</summary>
    public static IReadOnlyList<string> LastOfFields(IReadOnlyList<IdInputOptions> inputs) =>
        [.. inputs.Where(i => i.Source == IdSource.LastOf).Select(i => i.Field!).Distinct(StringComparer.Ordinal)];

    /// <summary>Values per embedding row.</summary>
    public int Dimension { get; set; } = DefaultDimension;

    /// <summary>Labels an id is learned from before it gets a row of its own; until then it reads the shared default row.</summary>
    public int MinCount { get; set; } = 1;

    /// <summary>An id not learned from for this long (label event time) is forgotten; 0 keeps ids until room is needed.</summary>
    public long TtlMs { get; set; }

    /// <summary>Rows the table may grow to; beyond it the ids learned from longest ago are forgotten.</summary>
    public int Capacity { get; set; } = DefaultCapacity;
}

namespace Inference.Engine.Features;

/// <summary>
/// How the device executor queues and batches serving reads: the serving stage's limits
/// (<c>Inference:Serving</c>), handed over as values so that the features stage does not import serving.
/// </summary>
public sealed record GatherLimits
{
    /// <summary>Rows one dynamic batch gathers at most (a larger request goes alone).</summary>
    public required int MaxBatchRows { get; init; }

    /// <summary>Rows one request may carry (the gather buffers hold the larger of the two).</summary>
    public required int MaxRowsPerRequest { get; init; }

    /// <summary>How long a batch that is not full may wait for more requests; 0 launches at once.</summary>
    public required int MaxQueueDelayMicroseconds { get; init; }

    /// <summary>Score gathers waiting at most; beyond it a request is refused.</summary>
    public required int MaxQueuedRequests { get; init; }

    /// <summary>Feature reads waiting at most.</summary>
    public required int MaxQueuedReads { get; init; }

    /// <summary>Calls waiting for the watermark to pass a position, at most.</summary>
    public required int MaxWatermarkWaiters { get; init; }
}

/// <summary>What the device executor reports of its serving queue (the serving stage's instruments implement it).</summary>
internal interface IGatherMetrics
{
    /// <summary>A dynamic batch of <paramref name="rows"/> rows was gathered.</summary>
    void Batch(int rows);

    /// <summary>A queued gather was dropped before it ran ("cancelled" or "deadline").</summary>
    void Abandoned(string reason);

    /// <summary>Observes the number of gathers waiting.</summary>
    void ObserveQueue(Func<int> queued);
}

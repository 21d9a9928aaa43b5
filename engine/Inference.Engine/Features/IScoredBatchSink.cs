using Inference.Engine.Ingest;

namespace Inference.Engine.Features;

/// <summary>
/// Receives the selected events of each applied micro-batch, on the device executor right after the
/// apply, with a read-only view of the state they were applied to (stream scoring).
/// </summary>
internal interface IScoredBatchSink
{
    /// <summary>Which events of each message to take (on the ingest thread, after it decoded).</summary>
    ScoreSelector Selector { get; }

    /// <summary>Completes once the sink knows what was already scored (nothing is handed over before).</summary>
    Task Ready { get; }

    void Applied(MicroBatch batch, FeatureView state, Func<FeatureWatermark> watermark);

    /// <summary>On the ingest thread before it hands on a batch: waits while too many applied batches wait to be scored (backpressure).</summary>
    void WaitForRoom(CancellationToken cancellation);

    /// <summary>On the ingest thread before partitions leave: waits until every applied batch's scores are known committed.</summary>
    void WaitSettled();
}

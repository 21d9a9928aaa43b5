using System.Diagnostics;

namespace Inference.Engine.Features;

/// <summary>
/// One caller's rows in the serving lane of the <see cref="DeviceExecutor"/>. Requests that wait
/// together are gathered together: one read of the feature table for all their rows, then one
/// <see cref="IGatheredBatchHandler.Handle"/> call for the batch.
/// </summary>
internal abstract class GatherRequest
{
    protected GatherRequest(IGatheredBatchHandler handler, ulong[] entities, int rows, CancellationToken cancellation, DateTime deadlineUtc, ulong[]? ids = null)
    {
        Debug.Assert(rows > 0 && rows <= entities.Length, "A request has at least one row and one entity per row.");
        Handler = handler;
        Entities = entities;
        Ids = ids;
        Rows = rows;
        Cancellation = cancellation;
        DeadlineUtc = deadlineUtc;
    }

    /// <summary>Who answers the request once its rows are read; a batch holds requests of one handler.</summary>
    public IGatheredBatchHandler Handler { get; }

    /// <summary>Entity keys (hashed), <see cref="Rows"/> of them; the array may be longer (pooled).</summary>
    public ulong[] Entities { get; }

    /// <summary>A model over ids: the rows' ids (hashed), one per id input per row, row after row; the array may be longer (pooled).</summary>
    public ulong[]? Ids { get; }

    public int Rows { get; }

    public CancellationToken Cancellation { get; }

    /// <summary>The call's deadline (<see cref="DateTime.MaxValue"/> for none).</summary>
    public DateTime DeadlineUtc { get; }

    /// <summary>When the request entered the queue (a timestamp of the executor's <see cref="TimeProvider"/>), set as it is queued.</summary>
    public long EnqueuedTimestamp { get; internal set; }

    /// <summary>Ends a request that will not be launched: cancelled, past its deadline, or the executor stopped.</summary>
    public abstract void Abandon(GatherOutcome outcome);
}

/// <summary>Why a request left the queue without being served.</summary>
internal enum GatherOutcome
{
    Cancelled,
    DeadlineExceeded,
    Stopped,
}

/// <summary>Turns one gathered batch into answers (serving: one forward pass, results split per request).</summary>
internal interface IGatheredBatchHandler
{
    /// <summary>
    /// Called on the executor's thread right after the read: <paramref name="features"/> holds
    /// <paramref name="width"/> columns per row, the requests' rows one after another, all read
    /// from the state of <paramref name="watermark"/>; for a model over ids, <paramref name="embeddings"/>
    /// holds the rows' embeddings (<see cref="EmbeddingStore.Width"/> per row) and <paramref name="ids"/> their ids
    /// (<see cref="EmbeddingStore.Count"/> per row, the LastOf ones filled in). Must not block.
    /// </summary>
    void Handle(ReadOnlySpan<GatherRequest> requests, float[] features, int width, float[]? embeddings, ulong[]? ids, FeatureWatermark watermark);
}

using System.Buffers;
using System.Threading.Channels;
using Inference.Engine.Training;
using Inference.Models.Registry;

namespace Inference.Engine.Serving;

/// <summary>
/// Scores served rows with a shadow candidate off the executor's thread, after their answers went out: a Score call
/// never waits for the candidate. Its scores are logged in the feature log beside what was served (rows with a
/// request id) and counted; when it falls behind by more than a few batches, batches are dropped and counted.
/// </summary>
internal sealed class ShadowScorer : IDisposable
{
    private const int QueuedBatches = 8;

    private readonly Channel<ShadowBatch> _queue = Channel.CreateBounded<ShadowBatch>(new BoundedChannelOptions(QueuedBatches) { SingleReader = true });
    private readonly LifecycleMetrics _metrics;
    private readonly FeatureLog? _log;
    private readonly Task _worker;

    public ShadowScorer(LifecycleMetrics metrics, FeatureLog? log)
    {
        _metrics = metrics;
        _log = log;
        _worker = Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>Queues the batch's rows (copied) for <paramref name="candidate"/>, whose lease it takes over.</summary>
    public void Offer(ModelLease candidate, ReadOnlySpan<float> inputs, ReadOnlySpan<float> embeddings, ReadOnlySpan<ulong> requests, int rows)
    {
        var batch = new ShadowBatch(candidate, Rent(inputs), embeddings.IsEmpty ? null : Rent(embeddings), requests.IsEmpty ? null : Rent(requests), rows);
        if (!_queue.Writer.TryWrite(batch))
        {
            batch.Dispose();
            _metrics.Shadow(rows, "dropped");
        }
    }

    private void Run()
    {
        var reader = _queue.Reader;
        float[] scores = [];
        while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
        {
            while (reader.TryRead(out var batch))
            {
                using (batch)
                {
                    if (scores.Length < batch.Rows)
                    {
                        scores = new float[Math.Max(batch.Rows, 2 * scores.Length)];
                    }
                    var snapshot = batch.Candidate.Snapshot;
                    snapshot.Score(batch.Inputs, batch.Embeddings, batch.Rows, scores);
                    if (_log is not null && batch.Requests is not null)
                    {
                        _log.Shadowed(batch.Requests.AsSpan(0, batch.Rows), scores.AsSpan(0, batch.Rows), snapshot.Version);
                    }
                    _metrics.Shadow(batch.Rows, "scored");
                }
            }
        }
    }

    private static T[] Rent<T>(ReadOnlySpan<T> values)
    {
        var copy = ArrayPool<T>.Shared.Rent(values.Length);
        values.CopyTo(copy);
        return copy;
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _worker.Wait();
        while (_queue.Reader.TryRead(out var batch))
        {
            batch.Dispose();
        }
    }

    private sealed record ShadowBatch(ModelLease Candidate, float[] Inputs, float[]? Embeddings, ulong[]? Requests, int Rows) : IDisposable
    {
        public void Dispose()
        {
            Candidate.Dispose();
            ArrayPool<float>.Shared.Return(Inputs);
            if (Embeddings is not null)
            {
                ArrayPool<float>.Shared.Return(Embeddings);
            }
            if (Requests is not null)
            {
                ArrayPool<ulong>.Shared.Return(Requests);
            }
        }
    }
}

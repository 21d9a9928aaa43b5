using System.Buffers;
using System.Threading.Channels;
using Inference.Engine.Pipeline;
using Inference.Engine.Training;
using Inference.Models.Registry;

namespace Inference.Engine.Serving;

/// <summary>
/// Scores served rows with a shadow candidate off the executor's thread, after their answers went out: a Score call
/// never waits for the candidate. Its scores are logged in the feature log beside what was served (rows with a
/// request id) and counted. The shadow is never urgent: it lets batches gather for a few milliseconds and scores
/// them in one forward pass (a pass costs about the same for one row or fifty), so it takes little of the cores
/// serving needs; when it falls behind by more than <see cref="QueuedBatches"/> batches, batches are dropped and counted.
/// </summary>
internal sealed class ShadowScorer : IDisposable
{
    private const int QueuedBatches = 256;
    private const int GatherMs = 10;

    private readonly Channel<ShadowBatch> _queue = Channel.CreateBounded<ShadowBatch>(new BoundedChannelOptions(QueuedBatches) { SingleReader = true });
    private readonly LifecycleMetrics _metrics;
    private readonly FeatureLog? _log;
    private readonly TimeProvider _time;

    public ShadowScorer(LifecycleMetrics metrics, FeatureLog? log, TimeProvider time)
    {
        _metrics = metrics;
        _log = log;
        _time = time;
        // Runs until the queue is completed (Dispose), then gives back whatever is left.
        _ = Task.Run(RunAsync);
    }

    /// <summary>Queues the batch's rows (copied) for <paramref name="candidate"/>, whose lease it takes over.</summary>
    public void Offer(ModelLease candidate, ReadOnlySpan<float> inputs, ReadOnlySpan<float> embeddings, ReadOnlySpan<ulong> requests, int rows)
    {
        var batch = new ShadowBatch(candidate, Rent(inputs), embeddings.IsEmpty ? null : Rent(embeddings), requests.IsEmpty ? null : Rent(requests), rows,
            inputs.Length / rows, embeddings.Length / rows);
        if (!_queue.Writer.TryWrite(batch))
        {
            batch.Dispose();
            _metrics.Shadow(rows, "dropped");
        }
    }

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        var gathered = new List<ShadowBatch>();
        float[] scores = [], inputs = [], embeddings = [];
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(GatherMs), _time).ConfigureAwait(false);
            while (reader.TryRead(out var batch))
            {
                gathered.Add(batch);
            }
            // Runs of batches leased on the same candidate: one forward pass each.
            for (int start = 0; start < gathered.Count;)
            {
                var snapshot = gathered[start].Candidate.Snapshot;
                int end = start, rows = 0;
                while (end < gathered.Count && ReferenceEquals(gathered[end].Candidate.Snapshot, snapshot))
                {
                    rows += gathered[end++].Rows;
                }
                int width = gathered[start].Width, embeddingWidth = gathered[start].EmbeddingWidth;
                WorkBuffers.Grow(ref scores, rows);
                WorkBuffers.Grow(ref inputs, rows * width);
                WorkBuffers.Grow(ref embeddings, rows * embeddingWidth);
                for (int b = start, at = 0; b < end; at += gathered[b++].Rows)
                {
                    var batch = gathered[b];
                    batch.Inputs.AsSpan(0, batch.Rows * width).CopyTo(inputs.AsSpan(at * width));
                    batch.Embeddings?.AsSpan(0, batch.Rows * embeddingWidth).CopyTo(embeddings.AsSpan(at * embeddingWidth));
                }
                snapshot.Score(inputs, embeddingWidth == 0 ? null : embeddings, rows, scores);
                for (int b = start, at = 0; b < end; at += gathered[b++].Rows)
                {
                    var batch = gathered[b];
                    if (_log is not null && batch.Requests is not null)
                    {
                        _log.Shadowed(batch.Requests.AsSpan(0, batch.Rows), scores.AsSpan(at, batch.Rows), snapshot.Version);
                    }
                    batch.Dispose();
                }
                _metrics.Shadow(rows, "scored");
                start = end;
            }
            gathered.Clear();
        }
    }

    private static T[] Rent<T>(ReadOnlySpan<T> values)
    {
        var copy = ArrayPool<T>.Shared.Rent(values.Length);
        values.CopyTo(copy);
        return copy;
    }

    /// <summary>Takes no more batches; the scorer scores what is queued and stops.</summary>
    public void Dispose() => _queue.Writer.TryComplete();

    private sealed record ShadowBatch(ModelLease Candidate, float[] Inputs, float[]? Embeddings, ulong[]? Requests, int Rows, int Width, int EmbeddingWidth) : IDisposable
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

using System.Buffers;
using Grpc.Core;
using Inference.Engine.Features;
using Inference.Engine.Pipeline;
using Inference.Models.Registry;
using Inference.Proto.V1;

namespace Inference.Engine.Serving;

/// <summary>
/// Serving's half of dynamic batching: the device executor gathers the rows of every waiting request
/// in one read, then this scores them in one forward pass with the leased model and answers each
/// request with its own rows' scores, the model version and the watermark of the batch. A canary candidate
/// answers the rows of its share of the entities (each response then names every row's version); a shadow
/// candidate scores every row after the answers went out. Rows that name a request id are written to the
/// feature log (when training keeps one) as they were answered.
/// </summary>
internal sealed class ScoreBatcher(ModelRegistry registry, int requestWidth, ServingMetrics metrics, TimeProvider time, Training.FeatureLog? log = null,
    ShadowScorer? shadow = null) : IGatheredBatchHandler
{
    private float[] _inputs = [];
    private float[] _scores = [];
    private float[] _candidateScores = [];
    private long[] _versions = [];
    private ulong[] _requests = [];

    public void Handle(ReadOnlySpan<GatherRequest> requests, float[] features, int width, float[]? embeddings, ulong[]? ids, Features.FeatureWatermark watermark)
    {
        int rows = 0;
        foreach (var request in requests)
        {
            rows += request.Rows;
        }
        float[] inputs = features;
        int inputsWidth = width + requestWidth;
        if (requestWidth > 0)
        {
            // Request features go after each row's entity features.
            WorkBuffers.Grow(ref _inputs, rows * inputsWidth);
            inputs = _inputs;
            int row = 0;
            foreach (var request in requests)
            {
                var rowsOfRequest = ((ScoreWork)request).Request.Rows;
                for (int r = 0; r < request.Rows; r++, row++)
                {
                    features.AsSpan(row * width, width).CopyTo(inputs.AsSpan(row * inputsWidth));
                    var requestFeatures = rowsOfRequest[r].RequestFeatures;
                    for (int j = 0; j < requestWidth; j++)
                    {
                        inputs[row * inputsWidth + width + j] = requestFeatures[j];
                    }
                }
            }
        }
        WorkBuffers.Grow(ref _scores, rows);
        WorkBuffers.Grow(ref _versions, rows);
        long version;
        using (var lease = registry.Acquire())
        {
            lease.Snapshot.Score(inputs, embeddings, rows, _scores);
            version = lease.Snapshot.Version;
        }
        _versions.AsSpan(0, rows).Fill(version);
        bool canary = false;
        ModelLease shadowing = default;
        if (registry.TryAcquireCandidate(out var candidate, out var info))
        {
            if (info.Mode == Models.Registry.CandidateMode.Canary)
            {
                using (candidate)
                {
                    Canary(requests, inputs, embeddings, rows, candidate.Snapshot, info.CanaryShare);
                }
                canary = true;
            }
            else if (shadow is not null)
            {
                shadowing = candidate;
            }
            else
            {
                candidate.Dispose();
            }
        }
        if (log is not null)
        {
            Log(requests, inputs, ids, rows);
        }
        var message = watermark.Message;
        int at = 0;
        foreach (var request in requests)
        {
            var work = (ScoreWork)request;
            var response = new ScoreResponse { Watermark = message, ModelVersion = version };
            for (int r = 0; r < work.Rows; r++)
            {
                response.Scores.Add(_scores[at + r]);
                response.RequestIds.Add(work.Request.Rows[r].RequestId);
                if (canary)
                {
                    response.RowVersions.Add(_versions[at + r]);
                }
            }
            at += work.Rows;
            metrics.Scored(work.Rows, time.GetElapsedTime(work.Started).TotalSeconds);
            work.Complete(response);
        }
        if (shadowing.Snapshot is not null)
        {
            // After the answers: the shadow's rows (and the lease) go to the shadow scorer, off the executor.
            shadow!.Offer(shadowing, inputs.AsSpan(0, rows * (width + requestWidth)), embeddings is null ? [] : embeddings.AsSpan(0, rows * registry.Spec.EmbeddingWidth),
                log is null ? [] : _requests.AsSpan(0, rows), rows);
        }
    }

    /// <summary>
    /// A canary: the candidate scores the batch and answers the rows of the entities in its share (their versions set
    /// to its own).
    /// </summary>
    private void Canary(ReadOnlySpan<GatherRequest> requests, float[] inputs, float[]? embeddings, int rows, ModelSnapshot candidate, double share)
    {
        WorkBuffers.Grow(ref _candidateScores, rows);
        candidate.Score(inputs, embeddings, rows, _candidateScores);
        int row = 0;
        foreach (var request in requests)
        {
            for (int r = 0; r < request.Rows; r++, row++)
            {
                if (Training.Canary.Answers(request.Entities[r], share))
                {
                    _scores[row] = _candidateScores[row];
                    _versions[row] = candidate.Version;
                }
            }
        }
    }

    /// <summary>Writes the rows that name a request id to the feature log: what the model saw, its score and version.</summary>
    private void Log(ReadOnlySpan<GatherRequest> requests, float[] inputs, ulong[]? ids, int rows)
    {
        if (_requests.Length < rows)
        {
            _requests = new ulong[Math.Max(rows, 2 * _requests.Length)];
        }
        bool any = false;
        int row = 0;
        foreach (var request in requests)
        {
            var rowsOfRequest = ((ScoreWork)request).Request.Rows;
            for (int r = 0; r < request.Rows; r++, row++)
            {
                string id = rowsOfRequest[r].RequestId;
                _requests[row] = string.IsNullOrEmpty(id) ? 0 : Kernels.Features.EntityKey.Hash(id);
                any |= _requests[row] != 0;
            }
        }
        if (any)
        {
            log!.Served(_requests.AsSpan(0, rows), inputs.AsSpan(0, rows * log.Width), ids is null ? [] : ids.AsSpan(0, rows * log.IdInputs), _scores.AsSpan(0, rows), _versions.AsSpan(0, rows));
        }
    }
}

/// <summary>One Score call waiting in the executor's serving lane.</summary>
internal sealed class ScoreWork : GatherRequest
{
    // Completed by whoever holds the executor's turn (its thread, or a caller serving on its own); an awaiting
    // call's continuation (writing the response) runs on the thread pool so the turn goes straight back to the
    // device. (Running it inline was measured: no better tail, lower saturated throughput.) A caller that served
    // its own call finds it complete and writes its response without a hop.
    private readonly TaskCompletionSource<ScoreResponse> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    // Set once the pooled key array is given back.
    private int _returned;

    public ScoreWork(IGatheredBatchHandler handler, ScoreRequest request, ulong[] entities, ulong[]? ids, ServerCallContext context, long started)
        : base(handler, entities, request.Rows.Count, context.CancellationToken, context.Deadline, ids)
    {
        Request = request;
        Started = started;
    }

    public ScoreRequest Request { get; }

    public long Started { get; }

    public Task<ScoreResponse> Task => _completion.Task;

    public void Complete(ScoreResponse response)
    {
        ReturnEntities();
        _completion.TrySetResult(response);
    }

    public override void Abandon(GatherOutcome outcome)
    {
        ReturnEntities();
        var status = outcome switch
        {
            GatherOutcome.Cancelled => new Status(StatusCode.Cancelled, "The call was cancelled before it reached the device."),
            GatherOutcome.DeadlineExceeded => new Status(StatusCode.DeadlineExceeded, "The call's deadline passed before it reached the device."),
            _ => new Status(StatusCode.Unavailable, "The engine is stopping."),
        };
        _completion.TrySetException(new RpcException(status));
    }

    /// <summary>Gives the pooled key arrays back once, whichever way the request ends.</summary>
    private void ReturnEntities()
    {
        if (Interlocked.Exchange(ref _returned, 1) == 0)
        {
            ArrayPool<ulong>.Shared.Return(Entities);
            if (Ids is not null)
            {
                ArrayPool<ulong>.Shared.Return(Ids);
            }
        }
    }
}

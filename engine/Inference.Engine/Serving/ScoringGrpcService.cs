using System.Buffers;
using System.Diagnostics;
using Grpc.Core;
using Inference.Engine.Features;
using Inference.Engine.Training;
using Inference.Kernels.Features;
using Inference.Proto.V1;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Serving;

/// <summary>
/// The serving stage's endpoint: validates a request, hashes its entities and queues it on the device
/// executor without blocking a thread; the executor gathers it with whatever else is waiting and the
/// <see cref="ScoreBatcher"/> scores the batch in one forward pass. A full queue sheds the call at
/// once with RESOURCE_EXHAUSTED; a call cancelled or past its deadline before launch is dropped.
/// </summary>
internal sealed class ScoringGrpcService(DeviceExecutor executor, ScoreBatcher batcher, ServingMetrics metrics, IOptions<ServingOptions> serving, IOptions<ModelOptions> model)
    : ScoringService.ScoringServiceBase
{
    private readonly int _requestWidth = model.Value.RequestFeatures;
    private readonly int _maxRows = serving.Value.MaxRowsPerRequest;

    public override Task<ScoreResponse> Score(ScoreRequest request, ServerCallContext context)
    {
        long started = Stopwatch.GetTimestamp();
        int rows = request.Rows.Count;
        Validate(request, rows);
        var entities = ArrayPool<ulong>.Shared.Rent(rows);
        for (int r = 0; r < rows; r++)
        {
            entities[r] = EntityKey.Hash(request.Rows[r].Entity);
        }
        var work = new ScoreWork(batcher, request, entities, context, started);
        if (!executor.TryEnqueue(work))
        {
            ArrayPool<ulong>.Shared.Return(entities);
            if (executor.IsStopping)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, "The engine is stopping."));
            }
            metrics.Shed();
            throw new RpcException(new Status(StatusCode.ResourceExhausted,
                $"{executor.QueuedRequests} requests are waiting for the device; retry with backoff (Inference:Serving:MaxQueuedRequests)."));
        }
        return work.Task;
    }

    private void Validate(ScoreRequest request, int rows)
    {
        if (rows == 0)
        {
            throw Invalid("The request has no rows.");
        }
        if (rows > _maxRows)
        {
            throw Invalid($"The request has {rows} rows; at most {_maxRows} are allowed (Inference:Serving:MaxRowsPerRequest).");
        }
        for (int r = 0; r < rows; r++)
        {
            var row = request.Rows[r];
            if (string.IsNullOrEmpty(row.Entity))
            {
                throw Invalid($"rows[{r}].entity is empty.");
            }
            if (row.RequestFeatures.Count != _requestWidth)
            {
                throw Invalid($"rows[{r}] has {row.RequestFeatures.Count} request features; the model takes {_requestWidth}.");
            }
            for (int j = 0; j < row.RequestFeatures.Count; j++)
            {
                if (!float.IsFinite(row.RequestFeatures[j]))
                {
                    throw Invalid($"rows[{r}].request_features[{j}] is {row.RequestFeatures[j]}; features must be finite numbers.");
                }
            }
        }
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}

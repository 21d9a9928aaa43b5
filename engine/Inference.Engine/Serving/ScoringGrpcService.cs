using System.Buffers;
using System.Diagnostics;
using Grpc.Core;
using Inference.Engine.Features;
using Inference.Engine.Hosting;
using Inference.Kernels.Features;
using Inference.Models.Registry;
using Inference.Proto.V1;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Serving;

/// <summary>
/// The serving stage: validates a request, gathers each row's entity features from the state table,
/// appends the request features and scores the batch with the published model, lease-held so a
/// concurrent publish never waits on it nor frees it.
/// </summary>
internal sealed class ScoringGrpcService(FeatureStore features, ModelRegistry registry, InferenceMetrics metrics, IOptions<InferenceOptions> options)
    : ScoringService.ScoringServiceBase
{
    private readonly int _requestWidth = options.Value.Model.RequestFeatures;
    private readonly int _maxRows = options.Value.Serving.MaxRowsPerRequest;

    public override Task<ScoreResponse> Score(ScoreRequest request, ServerCallContext context)
    {
        long started = Stopwatch.GetTimestamp();
        int rows = request.Rows.Count;
        Validate(request, rows);

        int width = features.FeatureWidth;
        int inputsWidth = width + _requestWidth;
        var entities = ArrayPool<ulong>.Shared.Rent(rows);
        var inputs = ArrayPool<float>.Shared.Rent(rows * inputsWidth);
        // Without request features the gathered matrix is the model input: no copy between them.
        var gathered = _requestWidth == 0 ? inputs : ArrayPool<float>.Shared.Rent(rows * width);
        var scores = ArrayPool<float>.Shared.Rent(rows);
        try
        {
            for (int r = 0; r < rows; r++)
            {
                entities[r] = EntityKey.Hash(request.Rows[r].Entity);
            }
            var watermark = features.Gather(entities.AsSpan(0, rows), gathered);
            if (_requestWidth > 0)
            {
                for (int r = 0; r < rows; r++)
                {
                    gathered.AsSpan(r * width, width).CopyTo(inputs.AsSpan(r * inputsWidth));
                    var requestFeatures = request.Rows[r].RequestFeatures;
                    for (int j = 0; j < _requestWidth; j++)
                    {
                        inputs[r * inputsWidth + width + j] = requestFeatures[j];
                    }
                }
            }

            var response = new ScoreResponse { Watermark = ToProto(watermark) };
            using (var lease = registry.Acquire())
            {
                lease.Snapshot.Score(inputs, rows, scores);
                response.ModelVersion = lease.Snapshot.Version;
            }
            for (int r = 0; r < rows; r++)
            {
                response.Scores.Add(scores[r]);
                response.RequestIds.Add(request.Rows[r].RequestId);
            }
            metrics.Scored(rows, Stopwatch.GetElapsedTime(started).TotalSeconds);
            return Task.FromResult(response);
        }
        finally
        {
            ArrayPool<ulong>.Shared.Return(entities);
            if (!ReferenceEquals(gathered, inputs))
            {
                ArrayPool<float>.Shared.Return(gathered);
            }
            ArrayPool<float>.Shared.Return(inputs);
            ArrayPool<float>.Shared.Return(scores);
        }
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

    internal static Proto.V1.FeatureWatermark ToProto(Features.FeatureWatermark watermark)
    {
        var result = new Proto.V1.FeatureWatermark
        {
            MaxEventTimeMs = watermark.MaxEventTimeMs,
            BatchesApplied = watermark.BatchesApplied,
        };
        foreach (var partition in watermark.Partitions)
        {
            result.Partitions.Add(new PartitionWatermark { Topic = partition.Topic, Partition = partition.Partition, LastAppliedOffset = partition.Offset });
        }
        return result;
    }
}

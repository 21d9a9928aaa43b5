using System.Buffers;
using Grpc.Core;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Training;
using Inference.Kernels.Features;
using Inference.Models;
using Inference.Models.Registry;
using Inference.Proto.V1;
using FeatureWatermark = Inference.Proto.V1.FeatureWatermark;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Serving;

/// <summary>
/// The serving stage's endpoint: validates a request, hashes its entities and queues it on the device
/// executor without blocking a thread; the executor gathers it with whatever else is waiting and the
/// <see cref="ScoreBatcher"/> scores the batch in one forward pass. A full queue sheds the call at
/// once with RESOURCE_EXHAUSTED; a call cancelled or past its deadline before launch is dropped.
/// </summary>
internal sealed class ScoringGrpcService(DeviceExecutor executor, FeatureStore features, ScoreBatcher batcher, ServingMetrics metrics, IOptions<ServingOptions> serving, IOptions<ModelOptions> model,
    IOptions<KafkaOptions> kafka, ModelRegistry registry, ModelLifecycle lifecycle, TimeProvider time, IScoreRouting? router = null, Training.ProgressiveValidation? validation = null)
    : ScoringService.ScoringServiceBase
{
    private readonly int _requestWidth = model.Value.RequestFeatures;
    private readonly RequestIds? _ids = model.Value.Ids.Count == 0 ? null : new RequestIds(model.Value.Ids);
    private readonly int _maxRows = serving.Value.MaxRowsPerRequest;
    private readonly string _eventsTopic = kafka.Value.EventsTopic;
    private readonly bool _requireCaughtUp = serving.Value.RequireCaughtUp;

    public override Task<ScoreResponse> Score(ScoreRequest request, ServerCallContext context)
    {
        long started = time.GetTimestamp();
        int rows = request.Rows.Count;
        Validate(request, rows);
        if (router?.Partitions(request) is { } partitions)
        {
            // A pool: rows other workers own go to them, unless this request was forwarded here by one.
            return context.RequestHeaders.GetValue(IScoreRouting.ForwardedHeader) is not null
                ? ScoreHereAsync(request, partitions, context, started)
                : router.ScoreAsync(request, partitions, _eventsTopic, context, (subset, rowPartitions) => ScoreHereAsync(subset, rowPartitions, context, started));
        }
        return ScoreLocal(request, context, started);
    }

    private Task<ScoreResponse> ScoreLocal(ScoreRequest request, ServerCallContext context, long started) =>
        request.MinWatermark is { Partitions.Count: > 0 } minimum ? ScoreAfterAsync(request, Minimum(minimum), context, started) : Enqueue(request, context, started);

    /// <summary>Scores on this worker's state and says so per row.</summary>
    private async Task<ScoreResponse> ScoreHereAsync(ScoreRequest request, int[] partitions, ServerCallContext context, long started)
    {
        if (_requireCaughtUp)
        {
            router!.RequireCaughtUp(partitions, executor.Watermark, _eventsTopic);
        }
        var response = await ScoreLocal(request, context, started).ConfigureAwait(false);
        router!.AddOrigins(response, partitions, _eventsTopic);
        return response;
    }

    /// <summary>Read-your-writes: waits (without a thread) until the applied state covers the minimum, then scores.</summary>
    private async Task<ScoreResponse> ScoreAfterAsync(ScoreRequest request, List<PartitionOffset> minimum, ServerCallContext context, long started)
    {
        var wait = executor.WaitForAsync(minimum, context.CancellationToken)
            ?? throw new RpcException(new Status(StatusCode.ResourceExhausted, "Too many calls wait for a watermark; retry with backoff (Inference:Serving:MaxWatermarkWaiters)."));
        if (!wait.IsCompleted)
        {
            metrics.WaitedForWatermark();
            try
            {
                await wait.ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
            {
                throw new RpcException(new Status(context.Deadline <= time.GetUtcNow().UtcDateTime ? StatusCode.DeadlineExceeded : StatusCode.Cancelled,
                    $"The features did not reach the requested watermark before the call ended (applied: {Describe(executor.Watermark)})."));
            }
            catch (OperationCanceledException)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, "The engine is stopping."));
            }
        }
        return await Enqueue(request, context, started).ConfigureAwait(false);
    }

    public override async Task<GetModelResponse> GetModel(GetModelRequest request, ServerCallContext context)
    {
        var (version, parameters) = registry.Current();
        if (request.Version < 0)
        {
            throw Invalid($"version is {request.Version}; 0 asks for the serving model.");
        }
        var record = registry.Find(request.Version == 0 ? version : request.Version);
        if (request.Version != 0 && request.Version != version)
        {
            version = request.Version;
            if (record is null)
            {
                throw new RpcException(new Status(StatusCode.NotFound, $"The registry records no version {version} (ModelService.ListVersions lists those it does)."));
            }
            parameters = registry.Parameters(version)
                ?? throw new RpcException(new Status(StatusCode.FailedPrecondition, $"The registry no longer keeps the weights of version {version} (ModelService.ListVersions marks the versions it keeps weights_kept)."));
        }
        var spec = registry.Spec;
        var response = new GetModelResponse
        {
            Version = version,
            Kind = spec.Kind.ToString(),
            Inputs = spec.Inputs,
            Hidden = spec.Kind is ModelKind.Mlp or ModelKind.EmbeddingMlp ? spec.Hidden : 0,
        };
        var inputs = model.Value.Ids;
        long[] rows = inputs.Count == 0 ? [] : await features.EmbeddingRowsAsync().ConfigureAwait(false);
        for (int i = 0; i < inputs.Count; i++)
        {
            response.Ids.Add(new IdInput { Name = inputs[i].Name, Source = inputs[i].Source.ToString(), Dimension = inputs[i].Dimension, Rows = rows[i], Field = inputs[i].Field ?? "" });
        }
        foreach (var definition in features.Plan.Definitions)
        {
            response.InputNames.Add(definition.Name);
        }
        for (int r = 0; r < _requestWidth; r++)
        {
            response.InputNames.Add($"request_{r}");
        }
        foreach (var parameter in parameters.Parameters)
        {
            var tensor = new NamedTensor { Name = parameter.Name };
            tensor.Shape.Add(parameter.Shape);
            tensor.Values.Add(parameter.Values);
            response.Tensors.Add(tensor);
        }
        if (record is not null)
        {
            response.Info = ModelGrpcService.Info(lifecycle, record);
        }
        if (validation is not null)
        {
            var (window, versions) = validation.Summarise();
            response.Validation = new Validation { Window = validation.Window, TotalLabels = validation.Total, Overall = Metrics(window) };
            foreach (var (scoredBy, summary) in versions)
            {
                response.Validation.Versions.Add(new VersionValidation { Version = scoredBy, Metrics = Metrics(summary) });
            }
        }
        return response;

        static ValidationMetrics Metrics(Training.ValidationSummary summary) => new()
        {
            Labels = summary.Labels,
            LogLoss = summary.LogLoss,
            Auc = summary.Auc,
            MeanScore = summary.MeanScore,
            PositiveRate = summary.PositiveRate,
        };
    }

    public override async Task<GetFeaturesResponse> GetFeatures(GetFeaturesRequest request, ServerCallContext context)
    {
        int rows = request.Entities.Count;
        if (rows == 0)
        {
            throw Invalid("The request names no entities.");
        }
        if (rows > _maxRows)
        {
            throw Invalid($"The request names {rows} entities; at most {_maxRows} are allowed (Inference:Serving:MaxRowsPerRequest).");
        }
        for (int r = 0; r < rows; r++)
        {
            if (string.IsNullOrEmpty(request.Entities[r]))
            {
                throw Invalid($"entities[{r}] is empty.");
            }
        }
        if (router?.Partitions(request) is { } partitions && context.RequestHeaders.GetValue(IScoreRouting.ForwardedHeader) is null)
        {
            // A pool: each entity is read from the worker that owns its partition.
            return await router.GetFeaturesAsync(request, partitions, context, ReadHereAsync).ConfigureAwait(false);
        }
        return await ReadHereAsync(request).ConfigureAwait(false);
    }

    private async Task<GetFeaturesResponse> ReadHereAsync(GetFeaturesRequest request)
    {
        if (_requireCaughtUp && router?.Partitions(request) is { } partitions)
        {
            router.RequireCaughtUp(partitions, executor.Watermark, _eventsTopic);
        }
        int rows = request.Entities.Count;
        var read = features.ReadManyAsync(request.Entities)
            ?? throw new RpcException(new Status(StatusCode.ResourceExhausted, "Too many GetFeatures reads wait for the device; retry with backoff (Inference:Serving:MaxQueuedReads)."));
        var (values, found, watermark) = await read.ConfigureAwait(false);
        int width = features.FeatureWidth;
        var response = new GetFeaturesResponse { Watermark = watermark.Message };
        foreach (var definition in features.Plan.Definitions)
        {
            response.FeatureNames.Add(definition.Name);
        }
        for (int r = 0; r < rows; r++)
        {
            var row = new EntityFeatures { Entity = request.Entities[r], Found = found[r] };
            if (found[r])
            {
                for (int f = 0; f < width; f++)
                {
                    row.Values.Add(values[r * width + f]);
                }
            }
            response.Entities.Add(row);
        }
        return response;
    }

    private List<PartitionOffset> Minimum(FeatureWatermark minimum)
    {
        var list = new List<PartitionOffset>(minimum.Partitions.Count);
        foreach (var partition in minimum.Partitions)
        {
            if (partition.Partition < 0 || partition.LastAppliedOffset < 0)
            {
                throw Invalid($"min_watermark names partition {partition.Partition} at offset {partition.LastAppliedOffset}; both must be non-negative.");
            }
            list.Add(new PartitionOffset(string.IsNullOrEmpty(partition.Topic) ? _eventsTopic : partition.Topic, partition.Partition, partition.LastAppliedOffset));
        }
        return list;
    }

    private static string Describe(Features.FeatureWatermark watermark) =>
        string.Join(", ", watermark.Partitions.Select(p => $"{p.Topic}/{p.Partition}@{p.Offset}"));

    private Task<ScoreResponse> Enqueue(ScoreRequest request, ServerCallContext context, long started)
    {
        int rows = request.Rows.Count;
        var entities = ArrayPool<ulong>.Shared.Rent(rows);
        for (int r = 0; r < rows; r++)
        {
            entities[r] = EntityKey.Hash(request.Rows[r].Entity);
        }
        var ids = _ids?.Hash(request, entities);
        var work = new ScoreWork(batcher, request, entities, ids, context, started);
        if (!executor.TryEnqueue(work))
        {
            ArrayPool<ulong>.Shared.Return(entities);
            if (ids is not null)
            {
                ArrayPool<ulong>.Shared.Return(ids);
            }
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
            if (_ids?.Problem(row) is { } problem)
            {
                throw Invalid($"rows[{r}].{problem}");
            }
            if (_ids is null && row.Ids.Count > 0)
            {
                throw Invalid($"rows[{r}].ids names {string.Join(", ", row.Ids.Keys.Order())}; the model reads no ids (Inference:Model:Ids).");
            }
        }
    }

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));
}

using Grpc.Core;
using Inference.Proto.V1;

namespace Inference.Engine.Serving;

/// <summary>
/// Score and GetFeatures across a pool (role Worker): which events partition each row belongs to, the
/// rows other workers own sent to them, and each row's origin said. The pool implements it; a single
/// node has none and scores every row itself.
/// </summary>
internal interface IScoreRouting
{
    /// <summary>The header a forwarded request carries: its receiver scores every row itself.</summary>
    const string ForwardedHeader = "inference-forwarded";

    /// <summary>Each row's events partition; null while the pool's partition count is unknown (score here).</summary>
    int[]? Partitions(ScoreRequest request);

    /// <summary>Each entity's events partition; null while the pool's partition count is unknown (read here).</summary>
    int[]? Partitions(GetFeaturesRequest request);

    /// <summary>Scores the rows this worker owns with <paramref name="local"/> and forwards the others to their owners, answers in request order.</summary>
    Task<ScoreResponse> ScoreAsync(ScoreRequest request, int[] partitions, string topic, ServerCallContext context, Func<ScoreRequest, int[], Task<ScoreResponse>> local);

    /// <summary>Reads the entities this worker owns with <paramref name="local"/> and forwards the others to their owners.</summary>
    Task<GetFeaturesResponse> GetFeaturesAsync(GetFeaturesRequest request, int[] partitions, ServerCallContext context, Func<GetFeaturesRequest, Task<GetFeaturesResponse>> local);

    /// <summary>Says per row where it was scored and whether that state was whole.</summary>
    void AddOrigins(ScoreResponse response, ReadOnlySpan<int> partitions, string topic);

    /// <summary>Refuses with UNAVAILABLE, naming the partition, rows whose state is not whole here.</summary>
    void RequireCaughtUp(IEnumerable<int> partitions, Features.FeatureWatermark applied, string topic);
}

using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Hosting;

/// <summary>
/// What the readiness probes report (<c>/readyz</c> and the gRPC health service alike): null when ready,
/// else why not. Not ready while stopping, while state is restored or replayed, and in a pool (role
/// Worker) while events arrive on other partitions than their entity's (their state is not where a
/// row is routed). A parameter server (role Ps) holds no features: the stages it lacks are absent here.
/// </summary>
internal sealed class Readiness(
    IOptions<InferenceOptions> inference,
    DeviceExecutor? executor = null,
    CheckpointCoordinator? checkpoints = null,
    MisroutedEvents? misrouted = null)
{
    private readonly bool _pool = inference.Value.Role == EngineRole.Worker;

    /// <summary>Liveness: null unless the engine is stopping.</summary>
    public string? Alive() => executor is { IsStopping: true } ? "the engine is stopping" : null;

    public string? Problem()
    {
        if (Alive() is { } stopping)
        {
            return stopping;
        }
        if (executor is null)
        {
            return null;
        }
        if (checkpoints is { Ready: false })
        {
            return $"not ready: {checkpoints.Waiting}";
        }
        return _pool && misrouted?.Problem() is { } problem ? $"not ready: {problem}" : null;
    }
}

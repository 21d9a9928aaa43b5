using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Hosting;

/// <summary>
/// What the readiness probes report (<c>/readyz</c> and the gRPC health service alike): null when ready,
/// else why not. Not ready while stopping, while state is restored or replayed, and in a pool (role
/// Worker) while events arrive on other partitions than their entity's (their state is not where a
/// row is routed).
/// </summary>
internal static class Readiness
{
    /// <summary>Liveness: null unless the engine is stopping.</summary>
    public static string? Alive(IServiceProvider services) =>
        services.GetService<DeviceExecutor>() is { IsStopping: true } ? "the engine is stopping" : null;

    public static string? Problem(IServiceProvider services)
    {
        if (Alive(services) is { } stopping)
        {
            return stopping;
        }
        if (services.GetService<DeviceExecutor>() is null)
        {
            return null;
        }
        var checkpoints = services.GetRequiredService<CheckpointCoordinator>();
        if (!checkpoints.Ready)
        {
            return $"not ready: {checkpoints.Waiting}";
        }
        bool pool = services.GetRequiredService<IOptions<InferenceOptions>>().Value.Role == EngineRole.Worker;
        return pool && services.GetService<MisroutedEvents>()?.Problem() is { } misrouted ? $"not ready: {misrouted}" : null;
    }
}

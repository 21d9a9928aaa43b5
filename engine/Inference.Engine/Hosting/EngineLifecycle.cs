using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Outputs;
using Inference.Engine.Pool;
using Inference.Engine.Sync;
using Inference.Engine.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Inference.Engine.Hosting;

/// <summary>
/// The engine's start order, in one place: the host starts its services in this order and stops them in
/// the reverse order (Kestrel, registered by the host after these, starts last and stops first). Of each,
/// only what the builder composed for the role runs.
/// </summary>
internal static class EngineLifecycle
{
    /// <summary>The services that run, in start order.</summary>
    public static readonly IReadOnlyList<Type> StartOrder =
    [
        // Where Kafka is (the embedded broker started, when configured): every client connects after.
        typeof(KafkaConnection),
        // A pool worker: nothing (consumers, training, announcements) starts before the pool's parameter server answers.
        typeof(ParameterServerCheck),
        // Before every stage that sends it work; it stops after all of them.
        typeof(DeviceExecutor),
        // The state restored (and its replay begun) before anything reads or changes it.
        typeof(CheckpointRestorer),
        // A worker's membership (it announces what it owns once the host has started).
        typeof(PoolMembership),
        // The model (and libtorch) load as the host starts: a model file that does not fit stops the start.
        typeof(ModelStartup),
        typeof(TrainingService),
        // The parameter server's own checkpoints (role Ps).
        typeof(ShardCheckpointer),
        // Stream scoring before ingest, so that it stops after it: what was applied is still scored and committed.
        typeof(StreamScorer),
        typeof(WebhookDispatcher),
        typeof(EventIngestor),
        // Last, so that it stops first: the final checkpoint is taken while ingest and training still run.
        typeof(CheckpointWriter),
    ];

    /// <summary>Registers, in <see cref="StartOrder"/>, each composed service as one the host runs.</summary>
    public static void Add(IServiceCollection services)
    {
        foreach (var type in StartOrder)
        {
            int composed = services.Count(d => d.ServiceType == type);
            for (int i = 0; i < composed; i++)
            {
                int index = i;
                services.AddSingleton<IHostedService>(sp => (IHostedService)sp.GetServices(type).ElementAt(index)!);
            }
        }
    }
}

using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Outputs;
using Inference.Engine.Pipeline;
using Inference.Engine.Pool;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Engine.Sync;
using Inference.Engine.Training;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Engine.Hosting;

/// <summary>What <see cref="InferenceServiceCollectionExtensions.AddInference"/> returns: the services and the role they were composed for.</summary>
public interface IInferenceBuilder
{
    IServiceCollection Services { get; }

    EngineRole Role { get; }
}

/// <summary>
/// Composes the stages of a role: every stage's options and metrics in any role (a misspelt key is an
/// error whatever the role), then the parts a role runs. Which of them start, and in what order, is
/// <see cref="EngineLifecycle"/>'s.
/// </summary>
internal sealed class InferenceBuilder(IServiceCollection services, IConfiguration configuration, EngineRole role) : IInferenceBuilder
{
    public IServiceCollection Services => services;

    public EngineRole Role => role;

    /// <summary>Every stage's options (bound from its <c>Inference:*</c> section), validator and metrics.</summary>
    public InferenceBuilder AddStageOptions()
    {
        SecurityStage.Add(services, configuration);
        IngestStage.AddOptions(services, configuration, role);
        FeatureStage.AddOptions(services, configuration);
        // A pool worker's name: its sync id, else this machine's (stable across restarts: its checkpoints are found again).
        string? poolWorker = role == EngineRole.Worker ? configuration[$"{SyncOptions.Section}:{nameof(SyncOptions.WorkerId)}"] ?? Environment.MachineName : null;
        CheckpointStage.AddOptions(services, configuration, poolWorker);
        ServingStage.AddOptions(services, configuration);
        TrainingStage.AddOptions(services, configuration, role);
        SyncStage.AddOptions(services, configuration, role);
        OutputsStage.AddOptions(services, configuration);
        // Every role owns partitions: a single node all of them, a pool worker those Kafka assigns it.
        PoolStage.AddOwnership(services);
        return this;
    }

    /// <summary>The pipeline (roles All and Worker): ingest, the device, the model and its trainer, Score, checkpoints and outputs.</summary>
    public InferenceBuilder AddPipeline()
    {
        IngestStage.AddConnection(services);
        TrainingStage.AddEmbeddings(services, configuration);
        FeatureStage.AddDevice(services);
        FeatureStage.AddIngestor(services);
        TrainingStage.AddModel(services, configuration);
        TrainingStage.AddTrainer(services, configuration);
        ServingStage.AddScoring(services);
        CheckpointStage.AddEngineCheckpoints(services);
        OutputsStage.AddStreamScoring(services, configuration);
        return this;
    }

    /// <summary>A single node (role All): the parameter shard in process, the trainer syncing with it, the pool's registry.</summary>
    public InferenceBuilder AddLocalParameters()
    {
        SyncStage.AddShard(services);
        SyncStage.AddLocalClient(services);
        PoolStage.AddRegistry(services);
        return this;
    }

    /// <summary>A pool worker (role Worker): the trainer syncing with the pool's parameter servers, membership, routing and handoff.</summary>
    public InferenceBuilder AddPoolWorker()
    {
        SyncStage.AddRemoteClient(services);
        PoolStage.AddMembership(services);
        return this;
    }

    /// <summary>A parameter server (role Ps): the shard, checkpointed, and the pool's registry.</summary>
    public InferenceBuilder AddParameterServer()
    {
        SyncStage.AddShard(services);
        CheckpointStage.AddShardCheckpoints(services);
        PoolStage.AddRegistry(services);
        return this;
    }
}

namespace Inference.Engine.Pipeline;

/// <summary>What a process of the engine does.</summary>
public enum EngineRole
{
    /// <summary>Ingest, features, serving and training, with the parameter shard in the same process.</summary>
    All,

    /// <summary>Ingest, features, serving and training, syncing with a remote parameter server.</summary>
    Worker,

    /// <summary>Only the parameter server shard.</summary>
    Ps,
}

/// <summary>
/// What the host runs, section <c>Inference</c>. Each stage owns its own options under it
/// (<c>Inference:Kafka</c>, <c>:Features</c>, <c>:Model</c>, <c>:Training</c>, <c>:Serving</c>, <c>:Sync</c>),
/// validated by its own validator; every default is a named constant.
/// </summary>
public sealed class InferenceOptions
{
    public const string Section = "Inference";

    public EngineRole Role { get; set; } = EngineRole.All;
}


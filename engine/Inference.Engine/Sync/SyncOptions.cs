namespace Inference.Engine.Sync;

/// <summary>Parameter sync with the parameter server, section <c>Inference:Sync</c>.</summary>
public sealed class SyncOptions
{
    public const string Section = "Inference:Sync";

    public const int DefaultIntervalMs = 1_000;

    /// <summary>The parameter server a worker syncs with, e.g. "http://ps-0:50051". Required for workers.</summary>
    public string? ParameterServer { get; set; }

    public int IntervalMs { get; set; } = DefaultIntervalMs;

    /// <summary>Names this worker to the parameter server; defaults to host name and process id.</summary>
    public string? WorkerId { get; set; }
}

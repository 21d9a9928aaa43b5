namespace Inference.Engine.Checkpoints;

/// <summary>Checkpoints of the engine's state, section <c>Inference:Checkpoints</c>. Off unless a directory is given.</summary>
public sealed class CheckpointOptions
{
    public const string Section = "Inference:Checkpoints";

    /// <summary>Where checkpoints are written and restored from; empty: no checkpoints (a restart starts from empty state).</summary>
    public string? Directory { get; set; }

    /// <summary>A checkpoint is taken this often (and once more on a graceful stop).</summary>
    public int IntervalMs { get; set; } = 10_000;

    /// <summary>The newest checkpoints kept; older ones are deleted once a newer one is durable.</summary>
    public int Keep { get; set; } = 3;

    /// <summary>
    /// When the newest checkpoint was taken under other feature declarations or another model shape:
    /// false (the default) stops the start with a message; true sets it aside and starts from empty state.
    /// </summary>
    public bool DiscardMismatched { get; set; }

    public bool Enabled => !string.IsNullOrWhiteSpace(Directory);

    /// <summary>
    /// In a pool (role Worker): the directory as configured, the pool's, where every worker keeps its own
    /// checkpoints (<see cref="Directory"/> is then this worker's subdirectory). Null outside a pool.
    /// </summary>
    public string? PoolDirectory { get; set; }
}

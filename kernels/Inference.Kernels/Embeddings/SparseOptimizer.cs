namespace Inference.Kernels.Embeddings;

/// <summary>Which per-coordinate optimizer updates embedding rows.</summary>
public enum SparseOptimizerKind
{
    /// <summary>Adagrad: n += g²; w −= lr · g / (√n + ε). One accumulator per coordinate.</summary>
    Adagrad,

    /// <summary>
    /// FTRL-Proximal (McMahan et al., 2013) with L1 and L2: per coordinate a z and an n; L1 drives
    /// coordinates to exactly zero. Two state values per coordinate.
    /// </summary>
    Ftrl,
}

/// <summary>The sparse optimizer of an embedding table: applied only to the rows a mini-batch touched.</summary>
public sealed record SparseOptimizer
{
    /// <summary>The ε of Adagrad's denominator (PyTorch's default).</summary>
    public const float AdagradEpsilon = 1e-10f;

    public SparseOptimizerKind Kind { get; init; } = SparseOptimizerKind.Adagrad;

    /// <summary>Adagrad's learning rate; FTRL's α.</summary>
    public float LearningRate { get; init; } = 0.05f;

    /// <summary>Every coordinate's n at a row's creation (Adagrad's initial accumulator; FTRL's n).</summary>
    public float InitialAccumulator { get; init; } = 0.1f;

    /// <summary>FTRL's β.</summary>
    public float Beta { get; init; } = 1f;

    /// <summary>FTRL's L1 strength.</summary>
    public float L1 { get; init; }

    /// <summary>FTRL's L2 strength.</summary>
    public float L2 { get; init; }

    /// <summary>State values per coordinate: Adagrad n; FTRL z then n.</summary>
    public int StateWidth => Kind == SparseOptimizerKind.Ftrl ? 2 : 1;

    /// <summary>The first problem with these settings, or null.</summary>
    public string? Problem() =>
        !(LearningRate > 0 && float.IsFinite(LearningRate)) ? $"LearningRate must be a positive number (got {LearningRate})"
        : !(InitialAccumulator >= 0 && float.IsFinite(InitialAccumulator)) ? $"InitialAccumulator must be 0 or more (got {InitialAccumulator})"
        : !(Beta >= 0 && float.IsFinite(Beta)) ? $"Beta must be 0 or more (got {Beta})"
        : !(L1 >= 0 && float.IsFinite(L1)) ? $"L1 must be 0 or more (got {L1})"
        : !(L2 >= 0 && float.IsFinite(L2)) ? $"L2 must be 0 or more (got {L2})"
        : Kind == SparseOptimizerKind.Ftrl && Beta == 0 && InitialAccumulator == 0 ? "FTRL needs Beta or InitialAccumulator above 0 (its first step would divide by zero)"
        : null;
}

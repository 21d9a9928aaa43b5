namespace Inference.Models;

public enum ModelKind
{
    /// <summary>One linear layer and a sigmoid.</summary>
    Logistic,

    /// <summary>Linear → ReLU → linear, and a sigmoid.</summary>
    Mlp,

    /// <summary>The standardised inputs concatenated with the id inputs' embeddings → linear → ReLU → linear, and a sigmoid.</summary>
    EmbeddingMlp,

    /// <summary>
    /// Two towers: the dot product of two id embeddings of one dimension (a user's and an item's) plus a
    /// linear term over the standardised inputs, and a sigmoid.
    /// </summary>
    DotProduct,
}

/// <summary>The shape of a scoring model: inputs (and id embeddings) in, one logit out.</summary>
/// <param name="Kind">Logistic regression, a small MLP, or one of the models over id embeddings.</param>
/// <param name="Inputs">Model-input width: entity features followed by request features.</param>
/// <param name="Hidden">Hidden units of the MLPs (ignored by the others).</param>
/// <param name="Seed">Seeds the initial weights, so every worker of a pool starts from the same model.</param>
/// <param name="IdDimensions">Per id input, its embedding's dimension (none for the models without ids).</param>
public sealed record ModelSpec(ModelKind Kind, int Inputs, int Hidden = 16, long Seed = 17, int[]? IdDimensions = null)
{
    /// <summary>Per id input, its embedding's dimension.</summary>
    public IReadOnlyList<int> Ids => IdDimensions ?? [];

    /// <summary>The embeddings' width per row: the id inputs' dimensions together.</summary>
    public int EmbeddingWidth => Ids.Sum();

    /// <summary>Whether the model reads id embeddings.</summary>
    public bool HasIds => Kind is ModelKind.EmbeddingMlp or ModelKind.DotProduct;

    /// <summary>The first problem with this shape, or null.</summary>
    public string? Problem() => Kind switch
    {
        _ when Inputs < 0 || Hidden <= 0 || Ids.Any(d => d <= 0) => $"inputs ({Inputs}), hidden units ({Hidden}) and id dimensions ({string.Join(", ", Ids)}) must be positive",
        ModelKind.Logistic or ModelKind.Mlp when Ids.Count > 0 => $"a {Kind} model reads no ids; {Ids.Count} id inputs need EmbeddingMlp or DotProduct",
        ModelKind.EmbeddingMlp when Ids.Count == 0 => "an EmbeddingMlp model needs at least one id input",
        ModelKind.DotProduct when Ids.Count != 2 || Ids[0] != Ids[1] => $"a DotProduct model needs two id inputs of one dimension (got {Ids.Count}: {string.Join(", ", Ids)})",
        _ => null,
    };

    public bool Equals(ModelSpec? other) =>
        other is not null && Kind == other.Kind && Inputs == other.Inputs && Hidden == other.Hidden && Seed == other.Seed && Ids.SequenceEqual(other.Ids);

    public override int GetHashCode() => HashCode.Combine(Kind, Inputs, Hidden, Seed, Ids.Count);
}

namespace Inference.Models;

public enum ModelKind
{
    /// <summary>One linear layer and a sigmoid.</summary>
    Logistic,

    /// <summary>Linear → ReLU → linear, and a sigmoid.</summary>
    Mlp,
}

/// <summary>The shape of a scoring model: inputs in, one logit out.</summary>
/// <param name="Kind">Logistic regression or a small MLP.</param>
/// <param name="Inputs">Model-input width: entity features followed by request features.</param>
/// <param name="Hidden">Hidden units of the MLP (ignored for logistic regression).</param>
/// <param name="Seed">Seeds the initial weights, so every worker of a pool starts from the same model.</param>
public sealed record ModelSpec(ModelKind Kind, int Inputs, int Hidden = 16, long Seed = 17);

using Inference.Models.Parameters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Inference.Models.Training;

/// <summary>Which optimizer steps the dense part of a model (its layers; id embeddings have their own).</summary>
public enum DenseOptimizerKind
{
    /// <summary>Plain SGD: w −= lr · g.</summary>
    Sgd,

    /// <summary>Adam (β₁ 0.9, β₂ 0.999, ε 1e-8, bias-corrected), as PyTorch's.</summary>
    Adam,

    /// <summary>Adagrad (ε 1e-10, accumulators from 0), as PyTorch's.</summary>
    Adagrad,
}

/// <summary>
/// The dense optimizer, written out over the module's trainable parameters so that its state is a set of
/// named tensors: checkpointed with the weights, and restored exactly (a restart goes on with the same
/// moments). The state is each learner's own; a pool merges weights, not optimizer state.
/// </summary>
internal sealed class DenseOptimizer : IDisposable
{
    private const double AdamBeta1 = 0.9;
    private const double AdamBeta2 = 0.999;
    private const double AdamEpsilon = 1e-8;
    private const double AdagradEpsilon = 1e-10;

    private readonly (string Name, Parameter Parameter, Tensor? First, Tensor? Second)[] _parameters;
    private readonly double _learningRate;
    private long _steps;

    public DenseOptimizer(DenseOptimizerKind kind, IEnumerable<(string Name, Parameter Parameter)> parameters, double learningRate)
    {
        Kind = kind;
        _learningRate = learningRate;
        _parameters = [.. parameters.Select(p => (p.Name, p.Parameter,
            kind == DenseOptimizerKind.Sgd ? null : torch.zeros_like(p.Parameter).detach(),
            kind == DenseOptimizerKind.Adam ? torch.zeros_like(p.Parameter).detach() : null))];
    }

    public DenseOptimizerKind Kind { get; }

    /// <summary>The state's names start with the optimizer's: a state of another optimizer is not taken for this one's.</summary>
    private string Prefix => $"optimizer.{Kind.ToString().ToLowerInvariant()}.";

    /// <summary>One step from the gradients the last backward pass left on the parameters.</summary>
    public void Step()
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        _steps++;
        foreach (var (_, parameter, first, second) in _parameters)
        {
            if (parameter.grad is not { } g)
            {
                continue;
            }
            switch (Kind)
            {
                case DenseOptimizerKind.Sgd:
                    parameter.add_(g, alpha: -_learningRate);
                    break;
                case DenseOptimizerKind.Adagrad:
                    first!.add_(g * g);
                    parameter.sub_(g * _learningRate / (first.sqrt() + AdagradEpsilon));
                    break;
                case DenseOptimizerKind.Adam:
                    first!.mul_(AdamBeta1).add_(g * (1 - AdamBeta1));
                    second!.mul_(AdamBeta2).add_(g * g * (1 - AdamBeta2));
                    double correction1 = 1 - Math.Pow(AdamBeta1, _steps);
                    double correction2 = 1 - Math.Pow(AdamBeta2, _steps);
                    parameter.sub_(first / correction1 * _learningRate / ((second / correction2).sqrt() + AdamEpsilon));
                    break;
            }
        }
    }

    /// <summary>The state as named tensors: each parameter's moments and the step count; null for SGD, which keeps none.</summary>
    public ParameterSet? Export()
    {
        if (Kind == DenseOptimizerKind.Sgd)
        {
            return null;
        }
        var result = new List<NamedParameter>();
        // A float holds the count exactly to 2^24 steps; past a few thousand steps Adam's bias correction is 1 anyway.
        result.Add(new NamedParameter(Prefix + "steps", [1], [_steps]));
        foreach (var (name, _, first, second) in _parameters)
        {
            result.Add(new NamedParameter($"{Prefix}first.{name}", first!.shape, first.data<float>().ToArray()));
            if (second is not null)
            {
                result.Add(new NamedParameter($"{Prefix}second.{name}", second.shape, second.data<float>().ToArray()));
            }
        }
        return new ParameterSet(result);
    }

    /// <summary>
    /// Goes on from an exported state of this optimizer and model. A state of another optimizer (the
    /// configuration changed) is left aside: this one starts from fresh moments.
    /// </summary>
    public void Import(ParameterSet state)
    {
        if (Kind == DenseOptimizerKind.Sgd || state.Find(Prefix + "steps") is not { } steps)
        {
            return;
        }
        using var noGrad = torch.no_grad();
        _steps = (long)steps.Values[0];
        foreach (var (name, _, first, second) in _parameters)
        {
            Copy(state, $"{Prefix}first.{name}", first!);
            if (second is not null)
            {
                Copy(state, $"{Prefix}second.{name}", second);
            }
        }
    }

    public void Dispose()
    {
        foreach (var (_, _, first, second) in _parameters)
        {
            first?.Dispose();
            second?.Dispose();
        }
    }

    private static void Copy(ParameterSet state, string name, Tensor target)
    {
        var source = state.Find(name) ?? throw new ArgumentException($"The optimizer state has no '{name}'.", nameof(state));
        if (!source.Shape.AsSpan().SequenceEqual(target.shape))
        {
            throw new ArgumentException($"The optimizer state's '{name}' has shape [{string.Join(',', source.Shape)}], the model needs [{string.Join(',', target.shape)}].", nameof(state));
        }
        using var values = torch.tensor(source.Values, source.Shape);
        target.copy_(values);
    }
}

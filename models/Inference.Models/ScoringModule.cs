using Inference.Models.Parameters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Inference.Models;

/// <summary>The TorchSharp module behind every scoring model: model inputs [rows × inputs] → logits [rows].</summary>
/// <remarks>
/// Inputs are standardised inside the model, <c>(x − input_mean) · input_scale</c>, with both vectors
/// non-trainable parameters that the trainer keeps at the running statistics of what it has seen.
/// They travel with the weights (publish, sync), so serving always applies the trainer's transform,
/// and SGD sees centred, unit-scale inputs whatever the magnitudes of the raw features.
/// </remarks>
public sealed class ScoringModule : nn.Module<Tensor, Tensor>
{
    public const string InputMeanName = "input_mean";
    public const string InputScaleName = "input_scale";

    private readonly nn.Module<Tensor, Tensor> _layers;
    private readonly Parameter _inputMean;
    private readonly Parameter _inputScale;

    public ScoringModule(ModelSpec spec)
        : base(nameof(ScoringModule))
    {
        Spec = spec;
        TorchRuntime.EnsureLoaded();
        torch.random.manual_seed(spec.Seed);
        _layers = spec.Kind switch
        {
            ModelKind.Logistic => nn.Sequential(("linear", nn.Linear(spec.Inputs, 1))),
            ModelKind.Mlp => nn.Sequential(
                ("hidden", nn.Linear(spec.Inputs, spec.Hidden)),
                ("relu", nn.ReLU()),
                ("output", nn.Linear(spec.Hidden, 1))),
            _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Kind, "Unknown model kind."),
        };
        _inputMean = new Parameter(torch.zeros(spec.Inputs), requires_grad: false);
        _inputScale = new Parameter(torch.ones(spec.Inputs), requires_grad: false);
        register_module("layers", _layers);
        register_parameter(InputMeanName, _inputMean);
        register_parameter(InputScaleName, _inputScale);
    }

    public ModelSpec Spec { get; }

    /// <summary>
    /// The first <paramref name="rows"/> rows of a row-major input array as a [rows × inputs] tensor
    /// that reads the array in place (no copy). Dispose it (a dispose scope) before the array is reused.
    /// </summary>
    public Tensor Inputs(float[] inputs, int rows)
    {
        if (inputs.Length < rows * Spec.Inputs)
        {
            throw new ArgumentException($"{rows} rows need {rows * Spec.Inputs} inputs; the array holds {inputs.Length}.", nameof(inputs));
        }
        return torch.from_array(inputs).narrow(0, 0, rows * Spec.Inputs).view(rows, Spec.Inputs);
    }

    public override Tensor forward(Tensor input) => _layers.forward((input - _inputMean) * _inputScale).squeeze(-1);

    /// <summary>Sets the input standardisation (the trainer's running statistics).</summary>
    public void SetInputStandardisation(ReadOnlySpan<float> mean, ReadOnlySpan<float> scale)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        _inputMean.copy_(torch.tensor(mean.ToArray()));
        _inputScale.copy_(torch.tensor(scale.ToArray()));
    }

    /// <summary>Copies the parameters out of the module.</summary>
    public ParameterSet Export()
    {
        var result = new List<NamedParameter>();
        using var scope = torch.NewDisposeScope();
        foreach (var (name, parameter) in named_parameters())
        {
            var values = parameter.detach().cpu().data<float>().ToArray();
            result.Add(new NamedParameter(name, parameter.shape, values));
        }
        return new ParameterSet(result);
    }

    /// <summary>Overwrites the module's parameters; every parameter must be present with its shape.</summary>
    public void Import(ParameterSet parameters)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            var source = parameters.Find(name)
                ?? throw new ArgumentException($"Parameter '{name}' is missing.", nameof(parameters));
            if (!source.Shape.AsSpan().SequenceEqual(parameter.shape))
            {
                throw new ArgumentException($"Parameter '{name}' has shape [{string.Join(',', source.Shape)}], the model needs [{string.Join(',', parameter.shape)}].", nameof(parameters));
            }
            parameter.copy_(torch.tensor(source.Values, source.Shape));
        }
    }

    internal IEnumerable<Parameter> TrainableParameters() => parameters().Where(p => p.requires_grad);
}

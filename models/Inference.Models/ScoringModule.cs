using Inference.Models.Parameters;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Inference.Models;

/// <summary>
/// The TorchSharp module behind every scoring model: model inputs [rows × inputs] (and, for the models over
/// ids, the rows' id embeddings [rows × embedding width], gathered from the embedding tables) → logits [rows].
/// The embeddings are inputs here, not parameters: the tables own them and learn them from the gradient
/// the learner hands back.
/// </summary>
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

    // The layers' names, and the prefixes their parameters carry ("layers.hidden.weight").
    public const string LayersName = "layers";
    public const string LinearName = "linear";
    public const string HiddenName = "hidden";
    public const string OutputName = "output";
    public const string LinearPrefix = LayersName + "." + LinearName + ".";
    public const string HiddenPrefix = LayersName + "." + HiddenName + ".";
    public const string OutputPrefix = LayersName + "." + OutputName + ".";

    private readonly nn.Module<Tensor, Tensor> _layers;
    private readonly Parameter _inputMean;
    private readonly Parameter _inputScale;

    public ScoringModule(ModelSpec spec)
        : base(nameof(ScoringModule))
    {
        if (spec.Problem() is { } problem)
        {
            throw new ArgumentException($"The model's shape: {problem}.", nameof(spec));
        }
        Spec = spec;
        TorchRuntime.EnsureLoaded();
        torch.random.manual_seed(spec.Seed);
        _layers = spec.Kind switch
        {
            ModelKind.Logistic or ModelKind.DotProduct => nn.Sequential((LinearName, nn.Linear(spec.Inputs, 1))),
            ModelKind.Mlp or ModelKind.EmbeddingMlp => nn.Sequential(
                (HiddenName, nn.Linear(spec.Inputs + spec.EmbeddingWidth, spec.Hidden)),
                ("relu", nn.ReLU()),
                (OutputName, nn.Linear(spec.Hidden, 1))),
            _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Kind, "Unknown model kind."),
        };
        _inputMean = new Parameter(torch.zeros(spec.Inputs), requires_grad: false);
        _inputScale = new Parameter(torch.ones(spec.Inputs), requires_grad: false);
        register_module(LayersName, _layers);
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

    /// <summary>
    /// The first <paramref name="rows"/> rows of a row-major embedding array as a [rows × embedding width]
    /// tensor that reads the array in place.
    /// </summary>
    public Tensor Embeddings(float[] embeddings, int rows)
    {
        int width = Spec.EmbeddingWidth;
        if (embeddings.Length < rows * width)
        {
            throw new ArgumentException($"{rows} rows need {rows * width} embedding values; the array holds {embeddings.Length}.", nameof(embeddings));
        }
        return torch.from_array(embeddings).narrow(0, 0, rows * width).view(rows, width);
    }

    public override Tensor forward(Tensor input) => Forward(input, null);

    /// <summary>Logits of the rows: standardised inputs, with the rows' embeddings for the models over ids.</summary>
    public Tensor Forward(Tensor input, Tensor? embeddings)
    {
        var standardised = (input - _inputMean) * _inputScale;
        if (!Spec.HasIds)
        {
            return _layers.forward(standardised).squeeze(-1);
        }
        if (embeddings is null)
        {
            throw new ArgumentNullException(nameof(embeddings), $"A {Spec.Kind} model scores rows with their id embeddings.");
        }
        if (Spec.Kind == ModelKind.EmbeddingMlp)
        {
            return _layers.forward(torch.cat([standardised, embeddings], 1)).squeeze(-1);
        }
        int d = Spec.Ids[0];
        var dot = (embeddings.narrow(1, 0, d) * embeddings.narrow(1, d, d)).sum(1);
        return _layers.forward(standardised).squeeze(-1) + dot;
    }

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

}

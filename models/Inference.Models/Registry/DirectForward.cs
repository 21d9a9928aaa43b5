using Inference.Models.Parameters;

namespace Inference.Models.Registry;

/// <summary>
/// A published model's forward pass evaluated directly over its parameters: the arithmetic of
/// <see cref="ScoringModule.Forward"/> (standardise, linear, ReLU, linear, the dot product of the id embeddings),
/// then the sigmoid. The models serving scores are small (a few dozen inputs, tens of hidden units): a batch
/// through libtorch cost about 170 µs of CPU on the development machine, nearly all of it per-operation
/// overhead, where these loops take a few microseconds. The weights never change: a snapshot is immutable.
/// </summary>
internal sealed class DirectForward
{
    private readonly ModelSpec _spec;
    private readonly float[] _mean;
    private readonly float[] _scale;
    // The first layer, row-major [units × fan-in].
    private readonly float[] _weight;
    private readonly float[] _bias;
    // The output layer of the perceptrons, [hidden], and its bias.
    private readonly float[] _output = [];
    private readonly float _outputBias;

    public DirectForward(ModelSpec spec, ParameterSet parameters)
    {
        _spec = spec;
        _mean = Values(parameters, ScoringModule.InputMeanName);
        _scale = Values(parameters, ScoringModule.InputScaleName);
        if (spec.Kind is ModelKind.Mlp or ModelKind.EmbeddingMlp)
        {
            _weight = Values(parameters, ScoringModule.HiddenPrefix + "weight");
            _bias = Values(parameters, ScoringModule.HiddenPrefix + "bias");
            _output = Values(parameters, ScoringModule.OutputPrefix + "weight");
            _outputBias = Values(parameters, ScoringModule.OutputPrefix + "bias")[0];
        }
        else
        {
            _weight = Values(parameters, ScoringModule.LinearPrefix + "weight");
            _bias = Values(parameters, ScoringModule.LinearPrefix + "bias");
        }
    }

    /// <summary>Probabilities of <paramref name="rows"/> rows (inputs row-major, embeddings row-major when the model reads ids).</summary>
    public void Score(ReadOnlySpan<float> inputs, ReadOnlySpan<float> embeddings, int rows, Span<float> scores)
    {
        int width = _spec.Inputs;
        int embeddingWidth = _spec.HasIds ? _spec.EmbeddingWidth : 0;
        Span<float> standardised = width <= 256 ? stackalloc float[width] : new float[width];
        for (int r = 0; r < rows; r++)
        {
            var row = inputs.Slice(r * width, width);
            for (int i = 0; i < width; i++)
            {
                standardised[i] = (row[i] - _mean[i]) * _scale[i];
            }
            var embedding = embeddingWidth == 0 ? default : embeddings.Slice(r * embeddingWidth, embeddingWidth);
            float logit = _spec.Kind switch
            {
                ModelKind.Mlp or ModelKind.EmbeddingMlp => Perceptron(standardised, embedding),
                ModelKind.DotProduct => Linear(standardised) + Dot(embedding),
                _ => Linear(standardised),
            };
            scores[r] = 1f / (1f + MathF.Exp(-logit));
        }
    }

    /// <summary>One hidden layer of ReLU units over the standardised inputs (and the embeddings after them), then the output unit.</summary>
    private float Perceptron(ReadOnlySpan<float> standardised, ReadOnlySpan<float> embedding)
    {
        int fanIn = standardised.Length + embedding.Length;
        float logit = _outputBias;
        for (int unit = 0; unit < _bias.Length; unit++)
        {
            var weights = _weight.AsSpan(unit * fanIn, fanIn);
            float sum = _bias[unit] + Dot(weights[..standardised.Length], standardised) + Dot(weights[standardised.Length..], embedding);
            logit += _output[unit] * MathF.Max(sum, 0f);
        }
        return logit;
    }

    /// <summary>The linear models' one output unit.</summary>
    private float Linear(ReadOnlySpan<float> standardised) => _bias[0] + Dot(_weight, standardised);

    /// <summary>A dot-product model's term: the first id's embedding against the second's.</summary>
    private float Dot(ReadOnlySpan<float> embedding)
    {
        int d = _spec.Ids[0];
        return Dot(embedding[..d], embedding.Slice(d, d));
    }

    private static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float sum = 0f;
        for (int i = 0; i < a.Length; i++)
        {
            sum += a[i] * b[i];
        }
        return sum;
    }

    private static float[] Values(ParameterSet parameters, string name) =>
        parameters.Find(name)?.Values ?? throw new ArgumentException($"Parameter '{name}' is missing.", nameof(parameters));
}

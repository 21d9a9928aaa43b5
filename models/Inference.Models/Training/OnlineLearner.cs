using Inference.Models.Parameters;
using TorchSharp;
using static TorchSharp.torch;

namespace Inference.Models.Training;

/// <summary>
/// The trainer's own copy of the weights and its optimizer. Only the trainer thread touches it:
/// <c>optimizer.step()</c> mutates weights in place, so serving gets copies through the registry.
/// </summary>
public sealed class OnlineLearner : IDisposable
{
    private readonly ScoringModule _module;
    private readonly optim.Optimizer _optimizer;

    public OnlineLearner(ModelSpec spec, double learningRate)
    {
        if (!(learningRate > 0) || double.IsInfinity(learningRate))
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be positive and finite.");
        }
        _module = new ScoringModule(spec);
        _module.train();
        _optimizer = optim.SGD(_module.TrainableParameters(), learningRate);
        Spec = spec;
    }

    public ModelSpec Spec { get; }

    /// <summary>Probabilities under the current trainer weights (for progressive validation).</summary>
    public void Predict(float[] inputs, int rows, Span<float> probabilities)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(inputs.AsSpan(0, rows * Spec.Inputs).ToArray(), [rows, Spec.Inputs]);
        torch.sigmoid(_module.forward(x)).data<float>().CopyTo(probabilities[..rows]);
    }

    /// <summary>One SGD step on the mean binary cross-entropy of a mini-batch; returns that loss before the step.</summary>
    public double Step(float[] inputs, float[] labels, int rows)
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(inputs.AsSpan(0, rows * Spec.Inputs).ToArray(), [rows, Spec.Inputs]);
        var y = torch.tensor(labels.AsSpan(0, rows).ToArray(), [rows]);
        _optimizer.zero_grad();
        var loss = nn.functional.binary_cross_entropy_with_logits(_module.forward(x), y);
        loss.backward();
        _optimizer.step();
        return loss.item<float>();
    }

    public ParameterSet Export() => _module.Export();

    public void Import(ParameterSet parameters) => _module.Import(parameters);

    public void Dispose()
    {
        _optimizer.Dispose();
        _module.Dispose();
    }
}

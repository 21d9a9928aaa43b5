using Inference.Models.Parameters;
using TorchSharp;
using static TorchSharp.torch;

namespace Inference.Models.Training;

/// <summary>
/// Everything a learner needs to go on where it stopped: its weights (with the input standardisation
/// they were trained under) and the running statistics behind that standardisation. Plain SGD keeps
/// no other optimizer state.
/// </summary>
/// <param name="Parameters">The weights, the input mean and the input scale.</param>
/// <param name="Rows">Rows the statistics weigh (at most <see cref="OnlineLearner.StatisticsHorizonRows"/>).</param>
/// <param name="Sums">Per input, the weighted sum of values.</param>
/// <param name="SumsOfSquares">Per input, the weighted sum of squared values.</param>
/// <param name="Optimizer">The dense optimizer's state (Adam's or Adagrad's moments; none for SGD or from an older checkpoint).</param>
public sealed record LearnerState(ParameterSet Parameters, double Rows, double[] Sums, double[] SumsOfSquares, ParameterSet? Optimizer = null);

/// <summary>
/// The trainer's own copy of the weights and its optimizer. Only the trainer thread touches it:
/// <c>optimizer.step()</c> mutates weights in place, so serving gets copies through the registry.
/// </summary>
public sealed class OnlineLearner : IDisposable
{
    /// <summary>
    /// The standardisation statistics weigh at most this many recent rows, so they follow a slowly
    /// drifting stream instead of freezing on its start.
    /// </summary>
    public const double StatisticsHorizonRows = 100_000;

    private readonly ScoringModule _module;
    private DenseOptimizer _optimizer;
    private readonly double[] _sum;
    private readonly double[] _sumOfSquares;
    private readonly float[] _mean;
    private readonly float[] _scale;
    private double _rows;
    private InputMoments _others;

    public OnlineLearner(ModelSpec spec, double learningRate, DenseOptimizerKind optimizer = DenseOptimizerKind.Sgd)
    {
        if (!(learningRate > 0) || double.IsInfinity(learningRate))
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "The learning rate must be positive and finite.");
        }
        _module = new ScoringModule(spec);
        _module.train();
        _optimizer = NewOptimizer(optimizer, learningRate);
        Spec = spec;
        _sum = new double[spec.Inputs];
        _sumOfSquares = new double[spec.Inputs];
        _mean = new float[spec.Inputs];
        _scale = new float[spec.Inputs];
        _others = InputMoments.Empty(spec.Inputs);
        LearningRate = learningRate;
    }

    public ModelSpec Spec { get; }

    /// <summary>The dense part's learning rate.</summary>
    public double LearningRate { get; private set; }

    /// <summary>The dense part's optimizer.</summary>
    public DenseOptimizerKind Optimizer => _optimizer.Kind;

    /// <summary>
    /// Goes on as <paramref name="other"/> does: its learning rate and optimizer, then its weights, optimizer state and
    /// statistics (a promoted candidate learner becoming the trainer's).
    /// </summary>
    public void TakeOver(OnlineLearner other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (other.Optimizer != Optimizer || other.LearningRate != LearningRate)
        {
            _optimizer.Dispose();
            _optimizer = NewOptimizer(other.Optimizer, other.LearningRate);
            LearningRate = other.LearningRate;
        }
        ImportState(other.ExportState());
    }

    /// <summary>An optimizer of the dense part's trainable parameters.</summary>
    private DenseOptimizer NewOptimizer(DenseOptimizerKind kind, double learningRate) =>
        new(kind, _module.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)), learningRate);

    /// <summary>Probabilities under the current trainer weights (for progressive validation).</summary>
    public void Predict(float[] inputs, int rows, Span<float> probabilities) => Predict(inputs, null, rows, probabilities);

    /// <summary>Probabilities under the current trainer weights, with the rows' id embeddings for the models over ids.</summary>
    public void Predict(float[] inputs, float[]? embeddings, int rows, Span<float> probabilities)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var logits = _module.Forward(_module.Inputs(inputs, rows), embeddings is null ? null : _module.Embeddings(embeddings, rows));
        torch.sigmoid(logits).data<float>().CopyTo(probabilities[..rows]);
    }

    /// <summary>One optimizer step on the mean binary cross-entropy of a mini-batch; returns that loss before the step.</summary>
    public double Step(float[] inputs, float[] labels, int rows) => Step(inputs, null, labels, rows, null);

    /// <summary>
    /// One optimizer step of the dense part on the mean binary cross-entropy of a mini-batch, with the rows'
    /// id embeddings for the models over ids; the loss's gradient with respect to each row's embeddings goes
    /// into <paramref name="embeddingGradients"/> (rows × embedding width) for the embedding tables' own
    /// optimizers. Returns the loss before the step.
    /// </summary>
    public double Step(float[] inputs, float[]? embeddings, float[] labels, int rows, float[]? embeddingGradients)
    {
        UpdateStandardisation(inputs, rows);
        using var scope = torch.NewDisposeScope();
        var y = torch.from_array(labels).narrow(0, 0, rows);
        _module.zero_grad();
        // A leaf over the caller's array: backward leaves the embeddings' gradient on it.
        var e = embeddings is null ? null : _module.Embeddings(embeddings, rows).detach().requires_grad_(true);
        var loss = nn.functional.binary_cross_entropy_with_logits(_module.Forward(_module.Inputs(inputs, rows), e), y);
        loss.backward();
        _optimizer.Step();
        if (e?.grad is { } gradient && embeddingGradients is not null)
        {
            gradient.data<float>().CopyTo(embeddingGradients.AsSpan(0, rows * Spec.EmbeddingWidth));
        }
        return loss.item<float>();
    }

    private void UpdateStandardisation(float[] inputs, int rows)
    {
        int width = Spec.Inputs;
        if (_rows + rows > StatisticsHorizonRows)
        {
            double keep = Math.Max(0, StatisticsHorizonRows - rows) / _rows;
            for (int c = 0; c < width; c++)
            {
                _sum[c] *= keep;
                _sumOfSquares[c] *= keep;
            }
            _rows *= keep;
        }
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < width; c++)
            {
                double x = inputs[r * width + c];
                _sum[c] += x;
                _sumOfSquares[c] += x * x;
            }
        }
        _rows += rows;
        ApplyStandardisation();
    }

    /// <summary>The standardisation from this learner's statistics and the other workers' (a pool's, merged at the last sync).</summary>
    private void ApplyStandardisation()
    {
        // In place, every mini-batch: no copies of the statistics.
        double rows = _rows + _others.Rows;
        for (int c = 0; c < _mean.Length; c++)
        {
            (_mean[c], _scale[c]) = InputMoments.Standardise(rows, _sum[c] + _others.Sums[c], _sumOfSquares[c] + _others.SumsOfSquares[c]);
        }
        _module.SetInputStandardisation(_mean, _scale);
    }

    /// <summary>This learner's own input statistics (what it pushes to the parameter server).</summary>
    public InputMoments Moments => new(_rows, (double[])_sum.Clone(), (double[])_sumOfSquares.Clone());

    /// <summary>
    /// The statistics of the other workers of a pool (the merged statistics minus this learner's as it
    /// pushed them): from now on the standardisation covers all of them, as one node that saw every
    /// row would have it. Sets the model's standardisation at once.
    /// </summary>
    public void SetOtherMoments(InputMoments others)
    {
        ArgumentNullException.ThrowIfNull(others);
        if (others.Sums.Length != Spec.Inputs)
        {
            throw new ArgumentException($"Statistics of {others.Sums.Length} inputs; the model has {Spec.Inputs}.", nameof(others));
        }
        _others = others;
        if (_rows + _others.Rows > 0)
        {
            ApplyStandardisation();
        }
    }

    public ParameterSet Export() => _module.Export();

    /// <summary>The weights and the standardisation statistics (for checkpoints).</summary>
    public LearnerState ExportState() => new(_module.Export(), _rows, (double[])_sum.Clone(), (double[])_sumOfSquares.Clone(), _optimizer.Export());

    /// <summary>Goes on from <paramref name="state"/>: its weights, and its statistics for the steps to come.</summary>
    public void ImportState(LearnerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.Sums.Length != Spec.Inputs || state.SumsOfSquares.Length != Spec.Inputs)
        {
            throw new ArgumentException($"The state has statistics for {state.Sums.Length} inputs; the model has {Spec.Inputs}.", nameof(state));
        }
        _module.Import(state.Parameters);
        if (state.Optimizer is { } optimizer)
        {
            _optimizer.Import(optimizer);
        }
        _rows = state.Rows;
        state.Sums.CopyTo(_sum, 0);
        state.SumsOfSquares.CopyTo(_sumOfSquares, 0);
    }

    public void Import(ParameterSet parameters) => _module.Import(parameters);

    /// <summary>
    /// Takes the model's current standardisation as the running statistics of <paramref name="rows"/>
    /// rows already seen (mean <c>input_mean</c>, variance <c>1 / input_scale²</c>), so that learning
    /// moves an imported model's standardisation gradually instead of replacing it with its first
    /// mini-batch's (which would change what the imported weights compute in one step).
    /// </summary>
    public void AdoptStandardisation(double rows)
    {
        if (!(rows > 0) || double.IsInfinity(rows))
        {
            throw new ArgumentOutOfRangeException(nameof(rows), rows, "The rows must be positive and finite.");
        }
        var parameters = _module.Export();
        var mean = parameters.Find(ScoringModule.InputMeanName)!.Values;
        var scale = parameters.Find(ScoringModule.InputScaleName)!.Values;
        _rows = Math.Min(rows, StatisticsHorizonRows);
        for (int c = 0; c < Spec.Inputs; c++)
        {
            double m = mean[c];
            double s = Math.Abs((double)scale[c]);
            double variance = s > 0 && double.IsFinite(1 / (s * s)) ? 1 / (s * s) : 0;
            _sum[c] = m * _rows;
            _sumOfSquares[c] = (variance + m * m) * _rows;
        }
    }

    public void Dispose()
    {
        _optimizer.Dispose();
        _module.Dispose();
    }
}

using Inference.Engine.Features;
using Inference.Engine.Pipeline;
using Inference.Models.Registry;
using Inference.Models.Training;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Training;

/// <summary>
/// Learns one mini-batch of labels, on the trainer's thread: joins each label with its entity's features
/// as of the label's event time (and, for a model over ids, with its ids' embeddings), scores it with
/// weights that have not seen it (progressive log loss), then steps the learner and the embedding rows.
/// A batch with a non-finite input, label or loss is skipped and counted, never learned from. Owns the
/// batch buffers and the counters a trainer checkpoint records.
/// </summary>
internal sealed class MiniBatchTrainer
{
    private const double LossSmoothing = 0.05;

    private readonly FeatureStore _features;
    private readonly OnlineLearner _learner;
    private readonly ModelRegistry _registry;
    private readonly TrainingMetrics _metrics;
    private readonly ILogger _logger;
    private readonly int _inputWidth;
    private readonly int _featureWidth;
    private readonly int _requestWidth;
    private readonly bool[] _inexact;
    private readonly float[] _inputs;
    private readonly float[] _gathered;
    private readonly float[] _predictions;
    private readonly LearnedIds? _ids;
    private double _smoothedLoss = double.NaN;

    public MiniBatchTrainer(FeatureStore features, OnlineLearner learner, ModelRegistry registry, int batchSize, int requestWidth,
        TrainingMetrics metrics, ILogger logger, long learned, long skipped)
    {
        _features = features;
        _learner = learner;
        _registry = registry;
        _metrics = metrics;
        _logger = logger;
        _inputWidth = registry.Spec.Inputs;
        _featureWidth = features.FeatureWidth;
        _requestWidth = requestWidth;
        _inexact = new bool[batchSize];
        _inputs = new float[batchSize * _inputWidth];
        // Without request features the gathered matrix is the model input: no copy between them.
        _gathered = requestWidth == 0 ? _inputs : new float[batchSize * _featureWidth];
        _predictions = new float[batchSize];
        _ids = features.IdInputs == 0 ? null : new LearnedIds(batchSize, features.IdInputs, features.EmbeddingWidth, features.Plan.LastKeyFields.Count);
        Learned = learned;
        Skipped = skipped;
    }

    /// <summary>Labels learned, checkpoints included.</summary>
    public long Learned { get; private set; }

    /// <summary>Labels skipped as non-finite, checkpoints included.</summary>
    public long Skipped { get; private set; }

    /// <summary>Learns <paramref name="batch"/>, or skips it whole when it is not finite.</summary>
    public void Train(LabelSink batch)
    {
        int count = batch.Count;
        if (_ids is not null)
        {
            batch.Ids.AsSpan(0, count * _features.IdInputs).CopyTo(_ids.Ids);
        }
        _metrics.PointInTimeInexact(_features.GatherAsOf(batch.Entities, batch.Times, count, _gathered, _inexact, _ids));
        if (_requestWidth > 0)
        {
            for (int r = 0; r < count; r++)
            {
                _gathered.AsSpan(r * _featureWidth, _featureWidth).CopyTo(_inputs.AsSpan(r * _inputWidth));
                batch.RequestFeatures.AsSpan(r * _requestWidth, _requestWidth).CopyTo(_inputs.AsSpan(r * _inputWidth + _featureWidth));
            }
        }
        // A non-finite input or label would poison the standardisation and the weights for good.
        if (!Finite.All(_inputs.AsSpan(0, count * _inputWidth)) || !Finite.All(batch.Labels.AsSpan(0, count)))
        {
            Skip(count, "non_finite_input", "a non-finite input or label");
            return;
        }
        double loss = ProgressiveLoss(batch.Labels, count);
        double stepLoss = _learner.Step(_inputs, _ids?.Embeddings, batch.Labels, count, _ids?.Gradients);
        if (!double.IsFinite(stepLoss) || !double.IsFinite(loss) || (_ids is not null && !Finite.All(_ids.Gradients.AsSpan(0, count * _features.EmbeddingWidth))))
        {
            // The weights the step produced are not trusted: back to the last published ones.
            _learner.Import(_registry.CurrentParameters());
            Skip(count, "non_finite_loss", "a non-finite loss");
            return;
        }
        if (_ids is not null)
        {
            // The rows learn with their tables' own optimizer from each label's own loss: the gradient of the
            // batch's sum, not its mean (a row's step does not shrink as the mini-batch grows).
            foreach (ref float gradient in _ids.Gradients.AsSpan(0, count * _features.EmbeddingWidth))
            {
                gradient *= count;
            }
            _features.StepEmbeddings(_ids, count);
        }
        _smoothedLoss = double.IsNaN(_smoothedLoss) ? loss : _smoothedLoss + LossSmoothing * (loss - _smoothedLoss);
        _metrics.Trained(count, _smoothedLoss);
        Learned += count;
    }

    /// <summary>The batch's mean log loss under the weights that have not seen it yet.</summary>
    private double ProgressiveLoss(float[] labels, int count)
    {
        _learner.Predict(_inputs, _ids?.Embeddings, count, _predictions);
        double loss = 0;
        for (int r = 0; r < count; r++)
        {
            double p = Math.Clamp(_predictions[r], 1e-7, 1 - 1e-7);
            loss -= labels[r] * Math.Log(p) + (1 - labels[r]) * Math.Log(1 - p);
        }
        return loss / count;
    }

    private void Skip(int count, string reason, string why)
    {
        Skipped += count;
        _metrics.Skipped(count, reason);
        TrainingLog.SkippedBatch(_logger, count, why);
    }
}

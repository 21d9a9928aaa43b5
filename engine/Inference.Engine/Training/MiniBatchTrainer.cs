using Inference.Engine.Features;
using Inference.Engine.Pipeline;
using Inference.Models.Registry;
using Inference.Models.Training;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Training;

/// <summary>
/// Learns one mini-batch of labels, on the trainer's thread: joins each label naming a request that the feature
/// log holds with what was served (model inputs and ids), each other label with its entity's features as of
/// the label's event time (and, for a model over ids, with its ids' embeddings), scores it with
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
    private readonly FeatureLog? _log;
    private readonly ProgressiveValidation? _validation;
    // Per label of the mini-batch: whether it learns from what was served (joined), and whether it is kept.
    private readonly bool[] _served;
    private readonly bool[] _keep;
    private readonly float[] _servedInputs;
    private readonly ulong[] _servedIds;
    private readonly ModelLifecycle? _lifecycle;
    // Per label: the candidate's and the baseline's scores, what answered it (and which version), and each model's loss.
    private readonly float[] _candidate;
    private readonly float[] _baseline;
    private readonly float[] _answered;
    private readonly long[] _versions;
    private readonly double[] _answeredLosses;
    private readonly double[] _servingLosses;
    private readonly double[] _candidateLosses;
    private readonly double[] _baselineLosses;
    private double _smoothedLoss = double.NaN;

    public MiniBatchTrainer(FeatureStore features, OnlineLearner learner, ModelRegistry registry, int batchSize, int requestWidth,
        TrainingMetrics metrics, ILogger logger, long learned, long skipped, FeatureLog? log = null, ProgressiveValidation? validation = null, ModelLifecycle? lifecycle = null)
    {
        _lifecycle = lifecycle;
        _candidate = new float[batchSize];
        _baseline = new float[batchSize];
        _answered = new float[batchSize];
        _versions = new long[batchSize];
        _answeredLosses = new double[batchSize];
        _servingLosses = new double[batchSize];
        _candidateLosses = new double[batchSize];
        _baselineLosses = new double[batchSize];
        _validation = validation;
        _log = log;
        _served = new bool[batchSize];
        _keep = new bool[batchSize];
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
        _servedInputs = log is null ? [] : new float[batchSize * _inputWidth];
        _servedIds = log is null ? [] : new ulong[batchSize * features.IdInputs];
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
        bool joins = _log is not null && Join(batch);
        int count = batch.Count;
        if (count == 0)
        {
            return;
        }
        if (_ids is not null)
        {
            batch.Ids.AsSpan(0, count * _features.IdInputs).CopyTo(_ids.Ids);
            if (joins)
            {
                // The ids served, LastOf ones included: the gather leaves them as they are.
                for (int r = 0; r < count; r++)
                {
                    if (_served[r])
                    {
                        _servedIds.AsSpan(r * _features.IdInputs, _features.IdInputs).CopyTo(_ids.Ids.AsSpan(r * _features.IdInputs));
                    }
                }
            }
        }
        var (inexact, replayed) = _features.GatherAsOf(batch.Entities, batch.Times, count, _gathered, _inexact, _ids, joins ? _served : null);
        _metrics.PointInTimeReplayed(replayed);
        if (_requestWidth > 0)
        {
            for (int r = 0; r < count; r++)
            {
                _gathered.AsSpan(r * _featureWidth, _featureWidth).CopyTo(_inputs.AsSpan(r * _inputWidth));
                batch.RequestFeatures.AsSpan(r * _requestWidth, _requestWidth).CopyTo(_inputs.AsSpan(r * _inputWidth + _featureWidth));
            }
        }
        if (joins)
        {
            // A label joined with its request learns from the model inputs served, bit for bit.
            for (int r = 0; r < count; r++)
            {
                if (_served[r])
                {
                    _servedInputs.AsSpan(r * _inputWidth, _inputWidth).CopyTo(_inputs.AsSpan(r * _inputWidth));
                    inexact -= _inexact[r] ? 1 : 0;
                }
            }
        }
        _metrics.PointInTimeInexact(inexact);
        _log?.Learned?.Invoke(batch.Requests.AsSpan(0, count), _inputs.AsSpan(0, count * _inputWidth));
        // A non-finite input or label would poison the standardisation and the weights for good.
        if (!Finite.All(_inputs.AsSpan(0, count * _inputWidth)) || !Finite.All(batch.Labels.AsSpan(0, count)))
        {
            Skip(count, "non_finite_input", "a non-finite input or label");
            return;
        }
        double loss = ProgressiveLoss(batch, count);
        // A candidate that learns steps on the same mini-batch, before the embedding rows move.
        _lifecycle?.StepCandidate(_inputs, _ids?.Embeddings, batch.Labels, count);
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

    /// <summary>
    /// Joins the mini-batch's labels with the feature log: marks in <see cref="_served"/> those that learn from what
    /// was served (their inputs and ids staged), sets duplicates aside; counts each outcome. Returns whether any joined.
    /// </summary>
    private bool Join(LabelSink batch)
    {
        int count = batch.Count;
        int idInputs = _log!.IdInputs;
        bool any = false, duplicates = false;
        for (int r = 0; r < count; r++)
        {
            var outcome = _log.Join(batch.Requests[r], _servedInputs.AsSpan(r * _inputWidth, _inputWidth), _servedIds.AsSpan(r * idInputs, idInputs));
            _metrics.LabelJoined(outcome);
            _served[r] = outcome == LabelJoin.Joined;
            _keep[r] = outcome != LabelJoin.Duplicate;
            any |= _served[r];
            duplicates |= !_keep[r];
        }
        if (duplicates)
        {
            // Compact the staged rows with the labels they belong to.
            int kept = 0;
            for (int r = 0; r < count; r++)
            {
                if (!_keep[r])
                {
                    continue;
                }
                if (kept != r)
                {
                    _served[kept] = _served[r];
                    _servedInputs.AsSpan(r * _inputWidth, _inputWidth).CopyTo(_servedInputs.AsSpan(kept * _inputWidth));
                    _servedIds.AsSpan(r * idInputs, idInputs).CopyTo(_servedIds.AsSpan(kept * idInputs));
                }
                kept++;
            }
            batch.KeepOnly(_keep);
        }
        return any;
    }

    /// <summary>
    /// The batch's mean log loss as answered now (by the serving version, or a canary candidate for its entities),
    /// before any learning (predict, then learn). Each label's answer goes to progressive validation under the version
    /// that gave it; the candidate and the guard's baseline score the same labels, and the lifecycle compares them.
    /// </summary>
    private double ProgressiveLoss(LabelSink batch, int count)
    {
        var labels = batch.Labels;
        long version;
        using (var lease = _registry.Acquire())
        {
            lease.Snapshot.Score(_inputs, _ids?.Embeddings, count, _predictions);
            version = lease.Snapshot.Version;
        }
        _predictions.AsSpan(0, count).CopyTo(_answered);
        _versions.AsSpan(0, count).Fill(version);
        long candidateVersion = 0, candidacy = 0;
        bool candidate = false, baseline = false;
        if (_lifecycle is not null)
        {
            if (_registry.TryAcquireCandidate(out var lease, out var info))
            {
                using (lease)
                {
                    lease.Snapshot.Score(_inputs, _ids?.Embeddings, count, _candidate);
                }
                candidate = true;
                candidateVersion = info.Version.Version;
                candidacy = info.Candidacy;
                if (info.Mode == Models.Registry.CandidateMode.Canary)
                {
                    for (int r = 0; r < count; r++)
                    {
                        if (Canary.Answers(batch.Entities[r], info.CanaryShare))
                        {
                            _answered[r] = _candidate[r];
                            _versions[r] = candidateVersion;
                        }
                    }
                }
            }
            if (_lifecycle.TryBaseline(version, out var reference))
            {
                reference.Score(_inputs, _ids?.Embeddings, count, _baseline);
                baseline = true;
            }
        }
        _validation?.Add(_answered.AsSpan(0, count), labels.AsSpan(0, count), _versions.AsSpan(0, count));
        double loss = 0;
        for (int r = 0; r < count; r++)
        {
            _answeredLosses[r] = LogLoss(_answered[r], labels[r]);
            loss += _answeredLosses[r];
            _servingLosses[r] = LogLoss(_predictions[r], labels[r]);
            _candidateLosses[r] = candidate ? LogLoss(_candidate[r], labels[r]) : 0;
            _baselineLosses[r] = baseline ? LogLoss(_baseline[r], labels[r]) : 0;
        }
        if (_lifecycle is not null && double.IsFinite(loss))
        {
            _lifecycle.Count(_answered.AsSpan(0, count), labels.AsSpan(0, count), _answeredLosses.AsSpan(0, count), _versions.AsSpan(0, count));
            _lifecycle.Observe(_learner, version, candidacy, _servingLosses.AsSpan(0, count),
                candidate ? _candidateLosses.AsSpan(0, count) : [], baseline ? _baselineLosses.AsSpan(0, count) : []);
        }
        return loss / count;
    }

    private static double LogLoss(float score, float label)
    {
        double p = Math.Clamp(score, 1e-7, 1 - 1e-7);
        return -(label * Math.Log(p) + (1 - label) * Math.Log(1 - p));
    }

    private void Skip(int count, string reason, string why)
    {
        Skipped += count;
        _metrics.Skipped(count, reason);
        TrainingLog.SkippedBatch(_logger, count, why);
    }
}

using System.Globalization;
using Inference.Models.Registry;
using Inference.Models.Training;

namespace Inference.Engine.Training;

// A candidate that learns: a second learner stepped on the serving model's mini-batches and published as the candidate.
internal sealed partial class ModelLifecycle
{
    // A candidate that learns (trainer's thread only): its learner and registration, and whether it learned since its last publish.
    private OnlineLearner? _candidateLearner;
    private long _learnerCandidacy;
    private bool _candidateLearned;

    /// <summary>
    /// Registers a candidate that learns: a second learner with its own learning rate and optimizer, starting from the
    /// serving model's weights and statistics, stepped on the same labels as the serving model and published as the
    /// candidate on the same interval. Runs on the trainer's thread; faults without one.
    /// </summary>
    public Task<ModelVersion> LoadLearnerAsync(double learningRate, Models.Training.DenseOptimizerKind optimizer, CandidateMode mode, double canaryShare, bool autoPromote) =>
        Run(learner =>
        {
            if (learner is null)
            {
                throw new InvalidOperationException("A candidate that learns needs the trainer: Inference:Training:Enabled is false, or it stopped.");
            }
            var candidate = new OnlineLearner(registry.Spec, learningRate, optimizer);
            // The serving model's weights and statistics; an optimizer state of its own.
            candidate.ImportState(learner.ExportState() with { Optimizer = null });
            string description = string.Create(CultureInfo.InvariantCulture, $"learning rate {learningRate}, {optimizer}");
            var info = registry.SetCandidate(candidate.Export(), mode, canaryShare, autoPromote, $"a learner from v{registry.Version} ({description})", description);
            _candidateLearner?.Dispose();
            (_candidateLearner, _learnerCandidacy, _candidateLearned) = (candidate, info.Candidacy, false);
            metrics.Candidate("loaded");
            LifecycleLog.CandidateLoaded(logger, info.Version.ToString(), mode.ToString(), canaryShare);
            return info.Version;
        });

    /// <summary>On the trainer's thread, after the serving model's step: the candidate learner steps on the same mini-batch.</summary>
    public void StepCandidate(float[] inputs, float[]? embeddings, float[] labels, int count)
    {
        if (_candidateLearner is null)
        {
            return;
        }
        if (registry.Candidate?.Candidacy != _learnerCandidacy)
        {
            // Withdrawn, replaced or promoted by another path: it learns no more.
            _candidateLearner.Dispose();
            _candidateLearner = null;
            return;
        }
        if (!double.IsFinite(_candidateLearner.Step(inputs, embeddings, labels, count, null)))
        {
            DropNonFiniteLearner();
            return;
        }
        _candidateLearned = true;
    }

    /// <summary>On the trainer's thread, when the serving model publishes: the candidate learner publishes too (never non-finite weights).</summary>
    public void PublishCandidate()
    {
        if (_candidateLearner is null || !_candidateLearned)
        {
            return;
        }
        _candidateLearned = false;
        var parameters = _candidateLearner.Export();
        if (!parameters.IsFinite())
        {
            DropNonFiniteLearner();
            return;
        }
        registry.UpdateCandidate(_learnerCandidacy, parameters);
    }

    /// <summary>A candidate learner gone non-finite is withdrawn: it could never serve.</summary>
    private void DropNonFiniteLearner()
    {
        if (registry.WithdrawCandidate() is { } withdrawn)
        {
            metrics.Candidate("rolled_back");
            LifecycleLog.CandidateWithdrawn(logger, withdrawn.Version.ToString(), "its learner's weights or loss are not finite");
        }
        _candidateLearner!.Dispose();
        _candidateLearner = null;
    }
}

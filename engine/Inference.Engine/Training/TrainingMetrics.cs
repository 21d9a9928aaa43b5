using System.Diagnostics.Metrics;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Training;

/// <summary>The training stage's instruments.</summary>
internal sealed class TrainingMetrics
{
    private readonly TotalCounter _labels;
    private readonly TotalCounter _malformedLabels;
    private readonly TotalCounter _publishes;
    private readonly TotalCounter _pointInTimeInexact;
    private readonly TotalCounter _pointInTimeReplayed;
    private readonly TotalCounter _featureLogSkipped;
    private readonly TotalCounter _skipped;
    private readonly TotalCounter _replayed;
    private readonly TotalCounter _joins;
    private readonly long[] _joinTotals = new long[4];
    private readonly Meter _meter;
    private double _onlineLogLoss = double.NaN;

    public TrainingMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(EngineMeter.Name);
        _labels = new(meter, "inference.training.labels", "{label}", "Labels trained on.");
        _malformedLabels = new(meter, "inference.training.malformed_labels", "{label}", "Labels set aside as malformed.");
        _publishes = new(meter, "inference.training.publishes", "{publish}", "Model versions published to serving.");
        _replayed = new(meter, "inference.training.replayed_labels", "{label}", "Labels read again after a rebalance or an offset rewind that were learned already: skipped.");
        _skipped = new(meter, "inference.training.skipped", "{label}", "Labels of mini-batches not learned from because an input, the loss or the model was not finite, by reason.");
        _featureLogSkipped = new(meter, "inference.training.feature_log_topic_skipped", "{row}",
            "Feature-log rows not written to or not read back from Inference:Training:FeatureLogTopic (the producer's queue full, a failed delivery, a record of another model's shape).");
        _pointInTimeReplayed = new(meter, "inference.training.point_in_time_replayed", "{label}",
            "Labels whose entity had events after their time, read as of their time by replaying the entity's journaled events (Inference:Training:PointInTimeEvents).");
        _pointInTimeInexact = new(meter, "inference.training.point_in_time_inexact", "{label}", "Labels joined with running aggregates that already include events after the label.");
        _joins = new(meter, "inference.training.label_joins", "{label}",
            "Labels by how they met their features: joined (what Score served under their request_id), fell_back (no request_id: the state at their time), too_late (the request is no longer in the feature log: the state at their time), duplicate (a label of the request was learned already: set aside).");
        _meter = meter;
        meter.CreateObservableGauge("inference.training.online_log_loss", () => Volatile.Read(ref _onlineLogLoss), null, "Progressive log loss of labels before training on them.");
    }

    public long LabelsTrained => _labels.Total;

    /// <summary>Reports the published model's version (serving's model) as <c>inference.model.version</c>.</summary>
    public void ObserveModelVersion(Func<long> version) =>
        _meter.CreateObservableGauge("inference.model.version", version, "{version}", "Version of the model serving uses (each publish or adopted merge adds one).");

    public long MalformedLabels => _malformedLabels.Total;

    /// <summary>Exponentially weighted progressive log loss (NaN until the first label).</summary>
    public double OnlineLogLoss => Volatile.Read(ref _onlineLogLoss);

    internal void Trained(int labels, double onlineLogLoss)
    {
        _labels.Add(labels);
        Volatile.Write(ref _onlineLogLoss, onlineLogLoss);
    }

    internal void MalformedLabel() => _malformedLabels.Add(1);

    public long SkippedLabels => _skipped.Total;

    public long ReplayedLabels => _replayed.Total;

    internal void ReplayedLabel() => _replayed.Add(1);

    internal void Skipped(int labels, string reason) => _skipped.Add(labels, "reason", reason);

    internal void Published() => _publishes.Add(1);

    public long PointInTimeReplayedLabels => _pointInTimeReplayed.Total;

    public long FeatureLogSkippedRows => _featureLogSkipped.Total;

    internal void FeatureLogSkipped() => _featureLogSkipped.Add(1);

    internal void PointInTimeReplayed(int labels)
    {
        if (labels > 0)
        {
            _pointInTimeReplayed.Add(labels);
        }
    }

    /// <summary>
    /// Reports progressive validation over its window (the serving versions' scores of labels before learning):
    /// <c>inference.training.validation.log_loss</c>, <c>.auc</c>, <c>.calibration</c> (mean score over positive rate).
    /// </summary>
    public void ObserveValidation(ProgressiveValidation validation, TimeProvider time)
    {
        // One summary per scrape (a sort of the window), shared by the three gauges.
        ValidationSummary summary = ValidationSummary.Empty;
        long at = 0;
        var gate = new object();
        ValidationSummary Current()
        {
            long now = time.GetTimestamp();
            lock (gate)
            {
                if (at == 0 || time.GetElapsedTime(at, now).TotalMilliseconds >= 1_000)
                {
                    summary = validation.Summarise(versions: 0).Window;
                    at = now;
                }
                return summary;
            }
        }
        _meter.CreateObservableGauge("inference.training.validation.log_loss", () => Current().LogLoss, null,
            "Log loss of the labels in progressive validation's window, scored by the version serving when each arrived, before learning.");
        _meter.CreateObservableGauge("inference.training.validation.auc", () => Current().Auc, null, "AUC of the labels in progressive validation's window.");
        _meter.CreateObservableGauge("inference.training.validation.calibration", () => Current().MeanScore / Current().PositiveRate, null,
            "Mean score over positive rate of the labels in progressive validation's window (1: calibrated).");
    }

    /// <summary>Labels so far by how they met their features (<see cref="LabelJoin"/>).</summary>
    public long LabelJoins(LabelJoin outcome) => Interlocked.Read(ref _joinTotals[(int)outcome]);

    internal void LabelJoined(LabelJoin outcome)
    {
        Interlocked.Increment(ref _joinTotals[(int)outcome]);
        _joins.Add(1, "outcome", outcome switch
        {
            LabelJoin.Joined => "joined",
            LabelJoin.FellBack => "fell_back",
            LabelJoin.TooLate => "too_late",
            _ => "duplicate",
        });
    }

    public long PointInTimeInexactLabels => _pointInTimeInexact.Total;

    internal void PointInTimeInexact(int labels)
    {
        if (labels > 0)
        {
            _pointInTimeInexact.Add(labels);
        }
    }
}

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
    private readonly TotalCounter _skipped;
    private readonly TotalCounter _replayed;
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
        _pointInTimeInexact = new(meter, "inference.training.point_in_time_inexact", "{label}", "Labels joined with running aggregates that already include events after the label.");
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

    internal void PointInTimeInexact(int labels)
    {
        if (labels > 0)
        {
            _pointInTimeInexact.Add(labels);
        }
    }
}

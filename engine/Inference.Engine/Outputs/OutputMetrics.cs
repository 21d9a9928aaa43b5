using System.Diagnostics.Metrics;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Outputs;

/// <summary>The outputs' instruments (meter "Inference"): stream scoring, alerts and their deliveries.</summary>
internal sealed class OutputMetrics
{
    private readonly TotalCounter _scored;
    private readonly TotalCounter _replayed;
    private readonly TotalCounter _alerts;
    private readonly TotalCounter _transactions;
    private readonly TotalCounter _failures;
    private readonly TotalCounter _delivered;
    private readonly TotalCounter _retries;
    private readonly TotalCounter _deadLettered;
    private readonly Histogram<double> _latency;
    private readonly Counter<double> _backpressure;
    private readonly TotalCounter _queueFull;

    public OutputMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(EngineMeter.Name);
        _scored = new(meter, "inference.outputs.scores", "{event}", "Events scored as they were applied and committed to the scores topic.");
        _replayed = new(meter, "inference.outputs.scores.replayed", "{event}", "Events applied again after a restart whose score the scores topic already held: not produced twice.");
        _alerts = new(meter, "inference.outputs.alerts", "{alert}", "Alerts committed to the alerts topic, by rule.");
        _transactions = new(meter, "inference.outputs.transactions", "{transaction}", "Kafka transactions committed by stream scoring.");
        _failures = new(meter, "inference.outputs.failures", "{failure}", "Stream-scoring transactions aborted and retried.");
        _delivered = new(meter, "inference.outputs.webhooks.delivered", "{alert}", "Alerts a webhook accepted (2xx).");
        _retries = new(meter, "inference.outputs.webhooks.retries", "{attempt}", "Webhook attempts after a failed one.");
        _deadLettered = new(meter, "inference.outputs.webhooks.dead_lettered", "{alert}", "Alerts set aside on the dead-letter topic after a webhook's last attempt.");
        _backpressure = meter.CreateCounter<double>("inference.outputs.scores.backpressure", "s",
            "Time ingest waited because applied batches waited for their stream-scoring transaction (Kafka not keeping up).");
        _queueFull = new(meter, "inference.outputs.scores.queue_full", "{wait}", "Times a score record waited for room in the producer's local queue.");
        _latency = meter.CreateHistogram<double>("inference.outputs.scores.latency", "s",
            "From the source event's Kafka timestamp to its score committed on the scores topic.", advice: EngineMeter.Seconds);
    }

    public long Scored => _scored.Total;

    public long Replayed => _replayed.Total;

    public long Alerts => _alerts.Total;

    public long Delivered => _delivered.Total;

    public long Retries => _retries.Total;

    public long DeadLettered => _deadLettered.Total;

    internal void Committed(int scored, int replayed)
    {
        _transactions.Add(1);
        _scored.Add(scored);
        if (replayed > 0)
        {
            _replayed.Add(replayed);
        }
    }

    internal void Alert(string rule) => _alerts.Add(1, "rule", rule);

    internal void Latency(double seconds) => _latency.Record(seconds);

    internal void Failure() => _failures.Add(1);

    internal void Backpressure(double seconds) => _backpressure.Add(seconds);

    internal void QueueFull() => _queueFull.Add(1);

    public long QueueFullWaits => _queueFull.Total;

    internal void DeliveredOne() => _delivered.Add(1);

    internal void Retry() => _retries.Add(1);

    internal void DeadLetteredOne() => _deadLettered.Add(1);
}

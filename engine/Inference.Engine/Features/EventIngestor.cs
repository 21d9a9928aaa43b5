using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Features;

/// <summary>
/// The ingest stage: a consumer-group member on the events topic that decodes events in place into
/// micro-batches (<see cref="KafkaBatchSource{TSink}"/>), hands each closed batch to the device
/// executor while the next one is decoded, and stores offsets for commit only once their batch is
/// applied. Malformed events are counted, set aside on the dead-letter topic and skipped.
/// </summary>
internal sealed class EventIngestor(KafkaConnection kafka, DeviceExecutor executor, IngestMetrics metrics, IConsumerCheckpoints checkpoints, IOptions<FeatureOptions> options,
    ConsumerReadiness readiness, IAssignmentListener ownership, MisroutedEvents misrouted, TimeProvider time, ILogger<EventIngestor> logger, IScoredBatchSink? scoring = null,
    IPartitionHandoff? handoff = null)
    : BackgroundService
{
    private const int IdleWaitMs = 100;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (scoring is not null)
        {
            // Nothing is scored before the committed progress is known (what a restart must not score again).
            await scoring.Ready.WaitAsync(stoppingToken).ConfigureAwait(false);
        }
        await Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).ConfigureAwait(false);
    }

    private void Run(CancellationToken stopping)
    {
        var features = options.Value;
        var settings = new BatchSourceSettings
        {
            Topic = kafka.Options.EventsTopic,
            GroupId = kafka.Options.GroupId,
            DefaultFormat = kafka.Options.EventsFormat,
            DeadLetterTopic = kafka.Options.DeadLetterTopic,
            MaxBatchDelayMs = features.MaxBatchDelayMs,
            Malformed = metrics.Malformed,
            Lag = metrics.Lag,
            PartitionLag = metrics.PartitionLag,
            DataLoss = metrics.DataLoss,
            Replayed = metrics.Replayed,
            Resume = checkpoints.Restored(kafka.Options.EventsTopic),
            CommitsFollowCheckpoints = checkpoints.Enabled,
            CaughtUp = checkpoints.Enabled ? () => checkpoints.CaughtUp(kafka.Options.EventsTopic, logger) : null,
            CaughtUpWithin = readiness.CaughtUpWithinEvents,
            TracksPositions = scoring is not null,
            Publishes = ownership,
            Handoff = handoff,
        };
        misrouted.Prepare();
        using var sink = new EventSink(executor, features.MaxBatchEvents, features.MaxFutureMs, time, scoring, stopping, misrouted);
        IngestLog.Started(logger, settings.Topic, settings.DefaultFormat, kafka.BootstrapServers, settings.GroupId, features.MaxBatchEvents, features.MaxBatchDelayMs);
        try
        {
            using var source = new KafkaBatchSource<EventSink>(kafka, settings, sink, time, logger);
            // The group join goes on in the client's threads meanwhile.
            if (IngestWarmup.Run(executor, time) is { } warmed)
            {
                IngestLog.Warmed(logger, warmed.TotalMilliseconds);
            }
            checkpoints.Register(source);
            try
            {
                while (!stopping.IsCancellationRequested)
                {
                    source.Poll(IdleWaitMs);
                }
            }
            finally
            {
                checkpoints.Unregister(source);
            }
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            IngestLog.ApplyFailed(logger, error);
            throw;
        }
    }
}

using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Engine.Sync;
using Inference.Models.Parameters;
using Inference.Models.Registry;
using Inference.Models.Training;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Training;

/// <summary>
/// The training stage, on one thread that owns the trainer's weights: consumes labels, joins each
/// with its entity's current features, scores it before learning from it (progressive log loss),
/// runs mini-batch SGD, publishes to serving on an interval and syncs with the parameter server.
/// </summary>
internal sealed class TrainingService : BackgroundService
{
    private const double LossSmoothing = 0.05;
    private const int IdlePollMs = 100;

    private readonly KafkaConnection _kafka;
    private readonly FeatureStore _features;
    private readonly ModelRegistry _registry;
    private readonly IParameterClient _parameters;
    private readonly TrainingMetrics _metrics;
    private readonly SyncMetrics _syncMetrics;
    private readonly ILogger _logger;
    private readonly TrainingOptions _training;
    private readonly ModelOptions _model;
    private readonly SyncOptions _sync;
    private readonly IConsumerCheckpoints _checkpoints;
    private readonly ITrainerCheckpoints _trainerCheckpoints;
    private readonly long _readyLag;
    private readonly IOwnedPartitions _ownership;
    private readonly bool _isWorker;
    private readonly TimeProvider _time;
    private bool _coPartitioned;

    private ParameterSet? _base;
    private long _baseVersion;
    private bool _learnedSinceSync;
    private (ParameterSet Delta, long BaseVersion, ulong Sequence, InputMoments Moments)? _unacked;
    private InputMoments? _pushedMoments;

    // Push sequence numbers continue across restarts of this worker: they start from the clock.
    private ulong _sequence;

    public TrainingService(KafkaConnection kafka, FeatureStore features, ModelRegistry registry, IParameterClient parameters,
        TrainingMetrics metrics, SyncMetrics syncMetrics, IOptions<TrainingOptions> training, IOptions<ModelOptions> model, IOptions<SyncOptions> sync,
        IConsumerCheckpoints checkpoints, ITrainerCheckpoints trainerCheckpoints, ConsumerReadiness readiness, IOwnedPartitions ownership, IOptions<InferenceOptions> engine,
        TimeProvider time, ILogger<TrainingService> logger)
    {
        _time = time;
        _sequence = (ulong)time.GetUtcNow().ToUnixTimeMilliseconds() << 16;
        _ownership = ownership;
        _isWorker = engine.Value.Role == EngineRole.Worker;
        _checkpoints = checkpoints;
        _trainerCheckpoints = trainerCheckpoints;
        _readyLag = readiness.CaughtUpWithinEvents;
        _kafka = kafka;
        _features = features;
        _registry = registry;
        _parameters = parameters;
        _metrics = metrics;
        _syncMetrics = syncMetrics;
        _logger = logger;
        _training = training.Value;
        _model = model.Value;
        _sync = sync.Value;
    }

    /// <summary>
    /// Labels are read from the partitions whose numbers match the events partitions this worker owns
    /// (same key, same partitioner, same count: a label lands where its entity's features are). Checked
    /// here, before anything runs: in a pool (role Worker) topics with different partition counts stop the
    /// start; a single node (role All) owns every partition anyway and reads labels as its own group.
    /// </summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        var options = _kafka.Options;
        int? events = _kafka.PartitionCount(options.EventsTopic);
        int? labels = _kafka.PartitionCount(options.LabelsTopic);
        _coPartitioned = events is null || labels is null || events == labels;
        if (!_coPartitioned)
        {
            string problem = $"{KafkaOptions.Section}:LabelsTopic '{options.LabelsTopic}' has {labels} partitions and {KafkaOptions.Section}:EventsTopic '{options.EventsTopic}' has {events}: "
                + "labels must be co-partitioned with events (same key, same partition count) so each label reaches the worker that holds its entity.";
            if (_isWorker)
            {
                throw new OptionsValidationException(KafkaOptions.Section, typeof(KafkaOptions), [problem]);
            }
            TrainingLog.NotCoPartitioned(_logger, problem);
        }
        return base.StartAsync(cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken stopping)
    {
        var training = _training;
        var spec = _registry.Spec;
        int width = _features.FeatureWidth;
        int requestWidth = _model.RequestFeatures;
        int batchSize = training.BatchSize;
        var inexact = new bool[batchSize];
        var inputs = new float[batchSize * spec.Inputs];
        // Without request features the gathered matrix is the model input: no copy between them.
        var gathered = requestWidth == 0 ? inputs : new float[batchSize * width];
        var predictions = new float[batchSize];
        double smoothedLoss = double.NaN;
        bool dirty = false;
        long learned = 0;
        long skipped = 0;

        using var learner = new OnlineLearner(spec, training.LearningRate);
        var restored = _trainerCheckpoints.Restored;
        if (restored is not null)
        {
            // Go on exactly where the checkpoint was taken: its weights, statistics and counters; the
            // labels after its offsets are read again and learned once.
            learner.ImportState(restored.Learner);
            _registry.Publish(restored.Learner.Parameters);
            learned = restored.LabelsLearned;
            skipped = restored.LabelsSkipped;
            _baseVersion = restored.BaseVersion;
        }
        else
        {
            learner.Import(_registry.CurrentParameters());
            if (_registry.Imported)
            {
                // A model trained elsewhere: its standardisation counts as a full horizon of rows already
                // seen, so learning refines it gradually instead of replacing it with the first mini-batch's.
                learner.AdoptStandardisation(OnlineLearner.StatisticsHorizonRows);
            }
        }
        TryJoinParameterServer(learner);

        void Train(LabelSink batch)
        {
            int count = batch.Count;
            // Point in time: each label sees its entity's features as of the label's event time.
            _metrics.PointInTimeInexact(_features.GatherAsOf(batch.Entities, batch.Times, count, gathered, inexact));
            if (requestWidth > 0)
            {
                for (int r = 0; r < count; r++)
                {
                    gathered.AsSpan(r * width, width).CopyTo(inputs.AsSpan(r * spec.Inputs));
                    batch.RequestFeatures.AsSpan(r * requestWidth, requestWidth).CopyTo(inputs.AsSpan(r * spec.Inputs + width));
                }
            }
            // A mini-batch with a non-finite input or label would poison the standardisation and the
            // weights for good: it is skipped and counted, never learned from.
            if (!Finite.All(inputs.AsSpan(0, count * spec.Inputs)) || !Finite.All(batch.Labels.AsSpan(0, count)))
            {
                skipped += count;
                _metrics.Skipped(count, "non_finite_input");
                TrainingLog.SkippedBatch(_logger, count, "a non-finite input or label");
                return;
            }
            // Progressive validation: score each label with the weights that have not seen it.
            learner.Predict(inputs, count, predictions);
            double loss = 0;
            var labels = batch.Labels;
            for (int r = 0; r < count; r++)
            {
                double p = Math.Clamp(predictions[r], 1e-7, 1 - 1e-7);
                loss -= labels[r] * Math.Log(p) + (1 - labels[r]) * Math.Log(1 - p);
            }
            loss /= count;
            smoothedLoss = double.IsNaN(smoothedLoss) ? loss : smoothedLoss + LossSmoothing * (loss - smoothedLoss);
            double stepLoss = learner.Step(inputs, labels, count);
            if (!double.IsFinite(stepLoss) || !double.IsFinite(loss))
            {
                // The weights the step produced are not trusted: back to the last published ones.
                learner.Import(_registry.CurrentParameters());
                skipped += count;
                _metrics.Skipped(count, "non_finite_loss");
                TrainingLog.SkippedBatch(_logger, count, "a non-finite loss");
                return;
            }
            _metrics.Trained(count, smoothedLoss);
            learned += count;
            dirty = true;
            _learnedSinceSync = true;
        }

        var sink = new LabelSink(batchSize, requestWidth, Train);
        var settings = new BatchSourceSettings
        {
            Topic = _kafka.Options.LabelsTopic,
            GroupId = _kafka.Options.GroupId + ".labels",
            DeadLetterTopic = _kafka.Options.LabelsDeadLetterTopic,
            MaxBatchDelayMs = training.MaxBatchDelayMs,
            Malformed = _ => _metrics.MalformedLabel(),
            Replayed = _metrics.ReplayedLabel,
            Resume = restored?.LabelOffsets ?? [],
            CommitsFollowCheckpoints = _checkpoints.Enabled,
            CaughtUp = _checkpoints.Enabled ? () => _checkpoints.CaughtUp(_kafka.Options.LabelsTopic, _logger) : null,
            CaughtUpWithin = _readyLag,
            Follows = _coPartitioned ? _ownership : null,
        };
        if (restored is not null)
        {
            sink.Restore(restored.LabelOffsets);
        }
        using var source = new KafkaBatchSource<LabelSink>(_kafka, settings, sink, _time, _logger);
        _checkpoints.Register(source);
        _trainerCheckpoints.Attach();
        TrainingLog.Started(_logger, spec.Kind.ToString(), spec.Inputs, settings.Topic, batchSize, training.LearningRate);

        try
        {
            long nextPublish = 0;
            long nextSync = Deadline.After(_time, _sync.IntervalMs);
            while (!stopping.IsCancellationRequested)
            {
                source.Poll(IdlePollMs);
                // Between two mini-batches: the weights, statistics and label offsets agree.
                _trainerCheckpoints.Serve(() => new TrainerCheckpoint(learner.ExportState(), sink.Done, learned, skipped, _baseVersion, training.LearningRate));
                long now = _time.GetTimestamp();
                if (dirty && now >= nextPublish)
                {
                    var parameters = learner.Export();
                    if (parameters.IsFinite())
                    {
                        _registry.Publish(parameters);
                        _metrics.Published();
                    }
                    else
                    {
                        // Never serve or push a non-finite model: back to the last published weights.
                        learner.Import(_registry.CurrentParameters());
                        _metrics.Skipped(0, "non_finite_model");
                        TrainingLog.SkippedBatch(_logger, 0, "a non-finite model");
                    }
                    dirty = false;
                    nextPublish = Deadline.After(_time, training.PublishIntervalMs);
                }
                if (now >= nextSync)
                {
                    Sync(learner);
                    nextSync = Deadline.After(_time, _sync.IntervalMs);
                }
            }
        }
        finally
        {
            // Checkpoints stop asking a trainer that is gone; its consumer no longer commits them.
            _trainerCheckpoints.Detach();
            _checkpoints.Unregister(source);
        }
    }

    /// <summary>Starts from the shard's parameters, or seeds an empty shard with ours.</summary>
    private void TryJoinParameterServer(OnlineLearner learner)
    {
        try
        {
            var (version, parameters, moments) = _parameters.Pull();
            if (parameters is null)
            {
                _parameters.Initialize(learner.Export());
                (version, parameters, moments) = _parameters.Pull();
            }
            Adopt(learner, version, parameters!, moments);
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            _syncMetrics.Failed();
            SyncLog.SyncFailed(_logger, error.Message);
        }
    }

    /// <summary>Pushes what this worker learned since its base version, then adopts the merged parameters.</summary>
    private void Sync(OnlineLearner learner)
    {
        try
        {
            if (_base is null)
            {
                TryJoinParameterServer(learner);
                return;
            }
            if (!ServerContinues(learner))
            {
                return;
            }
            if (_unacked is { } pending)
            {
                // The last push's answer was lost: the same push again (the same sequence), applied at most once.
                PushOnce(pending);
                _base = _base.Plus(pending.Delta);
            }
            if (_learnedSinceSync && learner.Export() is { } learned && learned.IsFinite())
            {
                _learnedSinceSync = false;
                PushOnce((learned.Minus(_base), _baseVersion, ++_sequence, learner.Moments));
            }
            var (version, merged, moments) = _parameters.Pull();
            Adopt(learner, version, merged!, moments);
            _syncMetrics.Synced();
            SyncLog.Synced(_logger, version);
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            _syncMetrics.Failed();
            SyncLog.SyncFailed(_logger, error.Message);
        }
    }

    /// <summary>
    /// Looks at the parameter server before pushing: a server that restarted empty is seeded again with
    /// this worker's parameters (what it learned included) and false is returned (this round is done);
    /// one that restarted and was seeded by another worker (its version is below this worker's base)
    /// takes this worker's delta against its current version. Nothing stays stuck on a restart.
    /// </summary>
    private bool ServerContinues(OnlineLearner learner)
    {
        var (version, parameters, _) = _parameters.Pull();
        if (parameters is null)
        {
            SyncLog.ServerRestarted(_logger, "empty; seeding it with this worker's parameters");
            _unacked = null;
            _learnedSinceSync = false;
            _pushedMoments = null;
            _parameters.Initialize(learner.Export());
            var (seeded, merged, moments) = _parameters.Pull();
            Adopt(learner, seeded, merged!, moments);
            _syncMetrics.Synced();
            return false;
        }
        if (version < _baseVersion)
        {
            SyncLog.ServerRestarted(_logger, $"at version {version}, below this worker's base {_baseVersion}; pushing against it");
            _baseVersion = version;
            if (_unacked is { } pending)
            {
                _unacked = pending with { BaseVersion = version };
            }
        }
        return true;
    }

    /// <summary>Pushes a delta; until the shard answers, it stays pending and is sent again at the next sync.</summary>
    private void PushOnce((ParameterSet Delta, long BaseVersion, ulong Sequence, InputMoments Moments) push)
    {
        _unacked = push;
        try
        {
            _parameters.Push(push.Delta, push.BaseVersion, push.Sequence, push.Moments);
            // What the shard now holds as this worker's statistics.
            _pushedMoments = push.Moments;
        }
        catch (StalePushException error)
        {
            // Too far behind: what was learned on so old a base is dropped; the pull that follows catches up.
            _syncMetrics.Refused("stale");
            SyncLog.StaleDropped(_logger, error.Message);
        }
        _unacked = null;
    }

    private void Adopt(OnlineLearner learner, long version, ParameterSet parameters, InputMoments? merged)
    {
        learner.Import(parameters);
        if (merged is not null && merged.Sums.Length == learner.Spec.Inputs)
        {
            // The other workers' statistics: the merged ones less this worker's as the shard holds them.
            learner.SetOtherMoments(_pushedMoments is null ? merged : merged.Minus(_pushedMoments));
        }
        _base = parameters;
        _baseVersion = version;
        if (!parameters.ApproximatelyEquals(_registry.CurrentParameters()))
        {
            _registry.Publish(parameters);
            _metrics.Published();
        }
    }

}

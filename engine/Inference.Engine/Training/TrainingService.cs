using Confluent.Kafka;
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
/// The training stage, on one thread that owns the trainer's weights: consumes labels in mini-batches
/// (each learned by <see cref="MiniBatchTrainer"/>), publishes to serving on an interval and syncs with
/// the parameter server.
/// </summary>
internal sealed partial class TrainingService : BackgroundService
{
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
    // Inference:Model:FileWins with a file: until the learner started from it (over a checkpoint's or the pool's weights).
    private bool _fileWins;
    private readonly IReadOnlyList<CheckpointIdInput>? _idInputs;
    private readonly FeatureLog? _log;
    private readonly ProgressiveValidation? _validation;
    private readonly ModelLifecycle _lifecycle;

    private ParameterSet? _base;
    private long _baseVersion;
    private bool _learnedSinceSync;
    private (ParameterSet Delta, long BaseVersion, ulong Sequence, InputMoments Moments, IReadOnlyList<RowBlock>? Rows)? _unacked;
    // A pool's model over ids: the embedding rows touched since the last push go with it, the pool's rows come back.
    private readonly bool _syncsRows;
    private InputMoments? _pushedMoments;

    // Push sequence numbers continue across restarts of this worker: they start from the clock.
    private ulong _sequence;

    public TrainingService(KafkaConnection kafka, FeatureStore features, ModelRegistry registry, IParameterClient parameters,
        TrainingMetrics metrics, SyncMetrics syncMetrics, IOptions<TrainingOptions> training, IOptions<ModelOptions> model, IOptions<SyncOptions> sync,
        IConsumerCheckpoints checkpoints, ITrainerCheckpoints trainerCheckpoints, ConsumerReadiness readiness, IOwnedPartitions ownership, IOptions<InferenceOptions> engine,
        TimeProvider time, ILogger<TrainingService> logger, ModelLifecycle lifecycle, FeatureLog? log = null, ProgressiveValidation? validation = null)
    {
        _lifecycle = lifecycle;
        if (training.Value.PointInTimeEvents > 0)
        {
            // Labels read their entities' state as of their time: the newest events are journaled for replay (the
            // trainer is built with the other hosted services, before any of them starts consuming).
            features.KeepJournal(training.Value.PointInTimeEvents);
        }
        _fileWins = !string.IsNullOrEmpty(model.Value.File) && model.Value.FileWins;
        _log = log;
        _validation = validation;
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
        _idInputs = _model.Ids.Count == 0 ? null : [.. _model.Ids.Select(i => new CheckpointIdInput(i.Name, i.Source.ToString(), i.Dimension))];
        _syncsRows = _isWorker && _model.Ids.Count > 0;
    }

    /// <summary>
    /// Labels are read from the partitions whose numbers match the events partitions this worker owns
    /// (same key, same partitioner, same count: a label lands where its entity's features are). Checked
    /// here, before anything runs: in a pool (role Worker) topics with different partition counts stop the
    /// start; a single node (role All) owns every partition anyway and reads labels as its own group.
    /// </summary>
    public override Task StartAsync(CancellationToken cancellationToken)
    {
        RefuseFileConflict();
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

    /// <summary>
    /// <c>Inference:Model:File</c> against weights held elsewhere: a restored checkpoint's or the parameter server's
    /// stop the start naming both, unless <c>Inference:Model:FileWins</c> says the file wins.
    /// </summary>
    private void RefuseFileConflict()
    {
        if (string.IsNullOrEmpty(_model.File) || _model.FileWins)
        {
            return;
        }
        string? holder = null;
        if (_trainerCheckpoints.Restored is not null)
        {
            holder = $"the checkpoint restored from Inference:Checkpoints:Directory holds the trainer's weights ({_trainerCheckpoints.Restored.LabelsLearned} labels learned)";
        }
        else if (_isWorker)
        {
            try
            {
                var (version, parameters, _) = _parameters.Pull();
                holder = parameters is null ? null : $"the parameter server holds the pool's weights at version {version}";
            }
            catch (Exception error) when (error is not OperationCanceledException)
            {
                // Not reachable now: the first sync decides (the pool's weights are adopted then).
                SyncLog.SyncFailed(_logger, error.Message);
            }
        }
        if (holder is not null)
        {
            throw new OptionsValidationException(ModelOptions.Section, typeof(ModelOptions), [
                $"{ModelOptions.Section}:File is {_model.File}, but {holder}. Start without the file to go on from those weights, "
                + $"or set {ModelOptions.Section}:FileWins=true (--model-wins) to serve and learn on from the file; "
                + "or register the file as a candidate on the running engine (inference model load FILE --to ADDRESS)."]);
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken stopping)
    {
        var training = _training;
        var restored = _trainerCheckpoints.Restored;
        using var learner = StartLearner(restored);
        TryJoinParameterServer(learner);
        using var logTopic = StartLogTopic();
        var trainer = new MiniBatchTrainer(_features, learner, _registry, training.BatchSize, _model.RequestFeatures, _metrics, _logger,
            restored?.LabelsLearned ?? 0, restored?.LabelsSkipped ?? 0, _log, _validation, _lifecycle);
        var sink = new LabelSink(training.BatchSize, _model.RequestFeatures, trainer.Train, _model.Ids.Count == 0 ? null : new LabelIdFields(_model.Ids));
        if (restored is not null)
        {
            sink.Restore(restored.LabelOffsets);
        }
        var settings = LabelSourceSettings(restored);
        using var source = new KafkaBatchSource<LabelSink>(_kafka, settings, sink, _time, _logger);
        _checkpoints.Register(source);
        _trainerCheckpoints.Attach();
        _lifecycle.Attach();
        TrainingLog.Started(_logger, _registry.Spec.Kind.ToString(), _registry.Spec.Inputs, settings.Topic, training.BatchSize, training.LearningRate);

        try
        {
            long published = trainer.Learned;
            long nextPublish = 0;
            long nextSync = Deadline.After(_time, _sync.IntervalMs);
            while (!stopping.IsCancellationRequested)
            {
                long before = trainer.Learned;
                source.Poll(IdlePollMs);
                // Promotions and rollbacks asked for by command: the learner goes on from the weights they serve.
                long served = _registry.Version;
                _lifecycle.Drain(learner);
                _learnedSinceSync |= trainer.Learned != before || _registry.Version != served;
                // Published before a checkpoint's cut, so that the lineage it holds names the weights it holds.
                long now = _time.GetTimestamp();
                if (trainer.Learned != published && now >= nextPublish)
                {
                    Publish(learner);
                    published = trainer.Learned;
                    nextPublish = Deadline.After(_time, training.PublishIntervalMs);
                }
                // Between two mini-batches: the weights, statistics and label offsets agree.
                _trainerCheckpoints.Serve(() =>
                {
                    // Partitions that left are dropped first (what was read of them learned): a hand-over checkpoint
                    // holds every label of theirs this worker learned, and it learns none after it.
                    source.FollowOwnership();
                    return new TrainerCheckpoint(learner.ExportState(), sink.Done, trainer.Learned, trainer.Skipped, _baseVersion, training.LearningRate)
                    {
                        Embeddings = _features.SnapshotEmbeddings(),
                        IdInputs = _idInputs,
                        Lineage = _registry.History(),
                        Figures = _lifecycle.AllFigures(),
                        Hyperparameters = learner.LearningRate != training.LearningRate || learner.Optimizer != training.Optimizer
                            ? new LearnerHyperparameters(learner.LearningRate, learner.Optimizer) : null,
                    };
                });
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
            _lifecycle.Detach();
            _checkpoints.Unregister(source);
        }
    }

    /// <summary>
    /// The trainer's learner: exactly where the checkpoint left it (weights, statistics, base version; the
    /// labels after its offsets are read again and learned once), else the serving model's weights.
    /// </summary>
    private OnlineLearner StartLearner(TrainerCheckpoint? restored)
    {
        // A candidate learner promoted before the checkpoint: the trainer goes on with its hyperparameters.
        var hyperparameters = restored?.Hyperparameters ?? new LearnerHyperparameters(_training.LearningRate, _training.Optimizer);
        if (restored?.Hyperparameters is { } promoted)
        {
            TrainingLog.PromotedHyperparameters(_logger, promoted.LearningRate, promoted.Optimizer.ToString());
        }
        var learner = new OnlineLearner(_registry.Spec, hyperparameters.LearningRate, hyperparameters.Optimizer);
        if (restored is not null)
        {
            // Before the lineage is restored: version 1 is the start's model (the file's, when one is given).
            var started = _registry.CurrentParameters();
            learner.ImportState(restored.Learner);
            // Versions go on from the checkpoint's lineage; the restored weights keep their content id.
            _registry.Restore(restored.Lineage ?? []);
            _lifecycle.Restore(restored.Figures ?? []);
            _baseVersion = restored.BaseVersion;
            if (_fileWins)
            {
                // The file wins over the checkpoint's weights; its label offsets and lineage still apply.
                var file = started;
                learner.Import(file);
                learner.AdoptStandardisation(OnlineLearner.StatisticsHorizonRows);
                _registry.Publish(file, Models.Registry.ModelOrigin.Imported, $"{_model.File}, winning over the checkpoint's weights ({ModelOptions.Section}:FileWins)");
                return learner;
            }
            _registry.Publish(restored.Learner.Parameters, Models.Registry.ModelOrigin.Restored);
            return learner;
        }
        learner.Import(_registry.CurrentParameters());
        if (_registry.Imported)
        {
            // A model trained elsewhere: its standardisation counts as a full horizon of rows already
            // seen, so learning refines it gradually instead of replacing it with the first mini-batch's.
            learner.AdoptStandardisation(OnlineLearner.StatisticsHorizonRows);
        }
        return learner;
    }

    /// <summary>The feature log's topic, read back and written from now on, when one is configured.</summary>
    private FeatureLogTopic? StartLogTopic()
    {
        if (_log is null || string.IsNullOrEmpty(_training.FeatureLogTopic))
        {
            return null;
        }
        var topic = new FeatureLogTopic(_kafka, _log, _training.FeatureLogTopic, _metrics, _time, _logger);
        try
        {
            topic.Start();
        }
        catch (KafkaException error)
        {
            // Labels of requests served before the restart then learn from the state at their time (too_late).
            TrainingLog.FeatureLogUnreadable(_logger, _training.FeatureLogTopic, error.Message);
        }
        return topic;
    }

    /// <summary>The labels consumer: its group, dead letters, resume offsets, commits and catch-up rules.</summary>
    private BatchSourceSettings LabelSourceSettings(TrainerCheckpoint? restored) => new()
    {
        Topic = _kafka.Options.LabelsTopic,
        GroupId = _kafka.Options.GroupId + ".labels",
        DeadLetterTopic = _kafka.Options.LabelsDeadLetterTopic,
        MaxBatchDelayMs = _training.MaxBatchDelayMs,
        Malformed = _ => _metrics.MalformedLabel(),
        Replayed = _metrics.ReplayedLabel,
        Resume = restored?.LabelOffsets ?? [],
        CommitsFollowCheckpoints = _checkpoints.Enabled,
        CaughtUp = _checkpoints.Enabled ? () => _checkpoints.CaughtUp(_kafka.Options.LabelsTopic, _logger) : null,
        CaughtUpWithin = _readyLag,
        Follows = _coPartitioned ? new WholePartitions(_ownership, () => _features.Published, _kafka.Options.EventsTopic) : null,
        // A labels partition taken up resumes where its last owner's hand-over checkpoint left it, not at an older commit.
        ArrivingFrom = _coPartitioned && _isWorker ? partition => _checkpoints.NewestInPool(_kafka.Options.LabelsTopic, partition) : null,
    };

    /// <summary>Publishes the learner's weights to serving; a non-finite model is never served or pushed.</summary>
    private void Publish(OnlineLearner learner)
    {
        _lifecycle.PublishCandidate();
        var parameters = learner.Export();
        if (parameters.IsFinite())
        {
            _registry.Publish(parameters);
            _metrics.Published();
            return;
        }
        learner.Import(_registry.CurrentParameters());
        _metrics.Skipped(0, "non_finite_model");
        TrainingLog.SkippedBatch(_logger, 0, "a non-finite model");
    }
}

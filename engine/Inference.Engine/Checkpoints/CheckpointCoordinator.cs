using System.Collections.Concurrent;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Engine.Training;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Checkpoints;

/// <summary>An output produced from applied state (stream scoring): a checkpoint waits until what it covers is committed there.</summary>
internal interface ICheckpointedOutput
{
    /// <summary>Units handed to the output so far (on the executor, in apply order).</summary>
    long Enqueued { get; }

    /// <summary>Of those, the ones durably committed.</summary>
    long Committed { get; }
}

/// <summary>
/// Where the stages meet the checkpoints: the checkpoint restored at start (read by the trainer and the
/// consumers), the consumers that commit once a checkpoint is durable, the trainer's answer to "your
/// state, please" on its own thread, and readiness (restored and replayed).
/// </summary>
internal sealed class CheckpointCoordinator : IConsumerCheckpoints, ITrainerCheckpoints
{
    private readonly ConcurrentDictionary<string, ICheckpointedSource> _sources = new();
    private readonly ConcurrentQueue<TaskCompletionSource<TrainerCheckpoint>> _trainerRequests = new();
    private readonly ConcurrentDictionary<string, bool> _catchingUp = new();
    private volatile bool _trainerAttached;
    private volatile bool _restored;
    private readonly string _eventsTopic;

    public CheckpointCoordinator(IOptions<CheckpointOptions> options, IOptions<KafkaOptions> kafka, IOptions<TrainingOptions> training)
    {
        Options = options.Value;
        _eventsTopic = kafka.Value.EventsTopic;
        // Ready once the events, and the labels when training, are replayed up to where they ended at start.
        _catchingUp[kafka.Value.EventsTopic] = true;
        if (training.Value.Enabled)
        {
            _catchingUp[kafka.Value.LabelsTopic] = true;
        }
    }

    public CheckpointOptions Options { get; }

    public bool Enabled => Options.Enabled;

    /// <summary>The checkpoint the engine started from; null when it started empty.</summary>
    public Checkpoint? Restored { get; private set; }

    /// <summary>
    /// True once the state is restored and the events read since the checkpoint are applied (always true
    /// without checkpoints): until then a load balancer should not send requests here.
    /// </summary>
    public bool Ready => !Enabled || (_restored && _catchingUp.IsEmpty);

    /// <summary>True once the state is restored (or known to start empty): from then on, any moment is a consistent cut.</summary>
    public bool IsRestored => _restored;

    /// <summary>What readiness is waiting for, when not ready.</summary>
    public string Waiting => !_restored ? "restoring the checkpoint" : $"replaying {string.Join(" and ", _catchingUp.Keys)} since the checkpoint";

    internal void MarkRestored(Checkpoint? checkpoint)
    {
        Restored = checkpoint;
        _restored = true;
    }

    /// <summary>Marks <paramref name="topic"/> replayed up to where it ended at start, and says so when that made the engine ready.</summary>
    internal void CaughtUp(string topic, ILogger logger)
    {
        if (_catchingUp.TryRemove(topic, out _) && Ready)
        {
            CheckpointLog.Ready(logger);
        }
    }

    internal void Register(ICheckpointedSource source) => _sources[source.Topic] = source;

    internal void Unregister(ICheckpointedSource source) => _sources.TryRemove(new KeyValuePair<string, ICheckpointedSource>(source.Topic, source));

    internal ICheckpointedSource? Source(string topic) => _sources.GetValueOrDefault(topic);

    /// <summary>The trainer runs and answers requests for its state from now on.</summary>
    internal void AttachTrainer() => _trainerAttached = true;

    /// <summary>The trainer stopped: requests waiting for it, and any made from now on, are cancelled.</summary>
    internal void DetachTrainer()
    {
        _trainerAttached = false;
        CancelTrainerRequests();
    }

    /// <summary>Asks the trainer for its state; completes on the trainer's thread between two mini-batches.</summary>
    internal Task<TrainerCheckpoint> RequestTrainerState()
    {
        var request = new TaskCompletionSource<TrainerCheckpoint>(TaskCreationOptions.RunContinuationsAsynchronously);
        _trainerRequests.Enqueue(request);
        if (!_trainerAttached)
        {
            CancelTrainerRequests();
        }
        return request.Task;
    }

    private void CancelTrainerRequests()
    {
        while (_trainerRequests.TryDequeue(out var request))
        {
            request.TrySetCanceled();
        }
    }

    /// <summary>On the trainer's thread: answers pending requests with <paramref name="capture"/>'s state.</summary>
    internal void ServeTrainer(Func<TrainerCheckpoint> capture)
    {
        if (_trainerRequests.IsEmpty)
        {
            return;
        }
        var state = capture();
        while (_trainerRequests.TryDequeue(out var request))
        {
            request.TrySetResult(state);
        }
    }

    IReadOnlyList<PartitionOffset> IConsumerCheckpoints.Restored(string topic) =>
        topic == _eventsTopic ? Restored?.Events.Partitions ?? [] : Restored?.Trainer?.LabelOffsets ?? [];

    void IConsumerCheckpoints.CaughtUp(string topic, ILogger logger) => CaughtUp(topic, logger);

    long? IConsumerCheckpoints.NewestInPool(string topic, int partition)
    {
        if (!Enabled || Options.PoolDirectory is not { } pool || !Directory.Exists(pool))
        {
            return null;
        }
        long? newest = null;
        foreach (string worker in Directory.GetDirectories(pool))
        {
            foreach (var entry in CheckpointFiles.List(worker))
            {
                var offsets = topic == _eventsTopic ? entry.Manifest?.Events.Offsets : entry.Manifest?.Trainer?.Offsets;
                foreach (var offset in offsets ?? [])
                {
                    if (offset.Topic == topic && offset.Partition == partition && (newest is null || offset.Offset > newest))
                    {
                        newest = offset.Offset;
                    }
                }
            }
        }
        return newest;
    }

    void IConsumerCheckpoints.Register(ICheckpointedSource source) => Register(source);

    void IConsumerCheckpoints.Unregister(ICheckpointedSource source) => Unregister(source);

    TrainerCheckpoint? ITrainerCheckpoints.Restored => Restored?.Trainer;

    void ITrainerCheckpoints.Attach() => AttachTrainer();

    void ITrainerCheckpoints.Serve(Func<TrainerCheckpoint> capture) => ServeTrainer(capture);

    void ITrainerCheckpoints.Detach() => DetachTrainer();
}

using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Engine.Training;
using Inference.Kernels.Features;
using Inference.Models.Registry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Checkpoints;

/// <summary>
/// Takes a checkpoint every <see cref="CheckpointOptions.IntervalMs"/> and once more when a graceful
/// stop begins (it starts last in EngineLifecycle, so it stops first, while ingest and training still run). The
/// state is copied on the executor and the trainer's thread; files are written here, off both; once
/// durable, the consumers commit the offsets it holds.
/// </summary>
internal sealed class CheckpointWriter(
    CheckpointCoordinator coordinator,
    DeviceExecutor executor,
    ModelRegistry registry,
    KafkaConnection kafka,
    CheckpointMetrics metrics,
    IOptions<TrainingOptions> training,
    IEnumerable<ICheckpointedOutput> outputs,
    TimeProvider time,
    ILogger<CheckpointWriter> logger) : BackgroundService
{
    private const int TrainerWaitMs = 30_000;
    private const int DeadLetterWarningMs = 5_000;
    private const int FinalDeadLetterWaitMs = 10_000;

    // Not timeouts: how often the waits for committed outputs and for acknowledged dead letters look again.
    private const int OutputsPollMs = 5;
    private const int DeadLettersPollMs = 10;

    private readonly SemaphoreSlim _one = new(1, 1);
    // Stream scoring, when on: a checkpoint covers only what its committed transactions name.
    private readonly ICheckpointedOutput? _output = outputs.SingleOrDefault();
    private (long Batches, long Labels, long LabelOffsets)? _last;
    private FeatureTableSnapshot? _spare;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!coordinator.Enabled)
        {
            return;
        }
        // A fixed cadence: every interval from the start (a write that overran it is followed at once).
        long next = Deadline.After(time, coordinator.Options.IntervalMs);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Deadline.RemainingMs(time, next)), time, stoppingToken);
                next = Deadline.After(time, coordinator.Options.IntervalMs);
                await TakeAsync(Timeout.Infinite, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception error)
            {
                metrics.Failure();
                CheckpointLog.Failed(logger, error);
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (!coordinator.Enabled || !coordinator.IsRestored)
        {
            // Stopped before the checkpoint was restored: it still holds.
            return;
        }
        try
        {
            await TakeAsync(FinalDeadLetterWaitMs, cancellationToken);
        }
        catch (Exception error)
        {
            metrics.Failure();
            CheckpointLog.Failed(logger, error);
        }
    }

    /// <summary>Takes, writes and commits one checkpoint; returns its entry, or null when it was skipped.</summary>
    public async Task<CheckpointEntry?> TakeAsync(int deadLetterWaitMs, CancellationToken cancellation)
    {
        await _one.WaitAsync(cancellation);
        try
        {
            TrainerCheckpoint? trainer = null;
            var labels = coordinator.Source(kafka.Options.LabelsTopic);
            if (training.Value.Enabled)
            {
                try
                {
                    trainer = await coordinator.RequestTrainerState().WaitAsync(TimeSpan.FromMilliseconds(TrainerWaitMs), time, cancellation);
                }
                catch (Exception error) when (error is TimeoutException or TaskCanceledException && !cancellation.IsCancellationRequested)
                {
                    metrics.Failure();
                    CheckpointLog.NotTaken(logger, "the trainer did not hand over its state (not running)");
                    return null;
                }
            }
            long labelLetters = labels?.DeadLettersProduced ?? 0;
            var events = coordinator.Source(kafka.Options.EventsTopic);
            // Nothing applied or learned since the last checkpoint (or the one restored): nothing to copy
            // or write. The exact watermark is a read on the executor, no copy of the state.
            var restored = coordinator.Restored;
            _last ??= restored is null ? null : Progress(restored.Events, restored.Trainer);
            if (Progress(await executor.ReadAsync((_, current) => current), trainer) == _last)
            {
                return null;
            }
            // The copy goes into warm arrays prepared here, off the executor: the previous checkpoint's
            // (written, durable and free), or new ones with every page touched.
            var spare = Interlocked.Exchange(ref _spare, null);
            if (spare is null || spare.Capacity != executor.Capacity)
            {
                spare = await Task.Run(() => FeatureTable.AllocateSnapshot(executor.Plan, executor.Capacity), cancellation);
            }
            long started = time.GetTimestamp();
            var (table, watermark) = await executor.SnapshotAsync(spare);
            double pause = time.GetElapsedTime(started).TotalSeconds;
            metrics.Paused(pause);
            long eventLetters = events?.DeadLettersProduced ?? 0;
            long outputs = _output?.Enqueued ?? 0;
            // A checkpoint holds an offset past a malformed event only once that event is safely set aside.
            if (!await DeadLettersWritten(events, eventLetters, deadLetterWaitMs, cancellation)
                || !await DeadLettersWritten(labels, labelLetters, deadLetterWaitMs, cancellation))
            {
                metrics.Failure();
                CheckpointLog.NotTaken(logger, "dead letters are still unwritten");
                return null;
            }
            // Nor past an event whose score (stream scoring) is not yet committed: after a restart from it,
            // the events it covers are not scored again.
            if (!await OutputsCommitted(outputs, deadLetterWaitMs, cancellation))
            {
                metrics.Failure();
                CheckpointLog.NotTaken(logger, "stream-scoring outputs are still uncommitted");
                return null;
            }
            // In a pool, once the events partition count is known, each partition's entities go to a file of their own.
            int segments = coordinator.Options.PoolDirectory is null ? 0 : kafka.KnownPartitionCount(kafka.Options.EventsTopic) ?? 0;
            var checkpoint = new Checkpoint(table, watermark, trainer, Checkpoint.Fingerprint(registry.Spec), segments);
            string directory = coordinator.Options.Directory!;
            long writeStarted = time.GetTimestamp();
            var entry = await InBackground(() =>
            {
                var written = CheckpointFiles.Write(directory, checkpoint, time);
                CheckpointFiles.Prune(directory, coordinator.Options.Keep);
                return written;
            });
            double write = time.GetElapsedTime(writeStarted).TotalSeconds;
            _last = Progress(watermark, trainer);
            _spare = table;
            long bytes = entry.Manifest!.Files.Sum(f => f.Bytes);
            metrics.Checkpointed(write, bytes);
            CheckpointLog.Written(logger, entry.Path, table.Entities, bytes, pause * 1e3, write * 1e3);
            // Durable: Kafka may now know these offsets as consumed (lag monitoring stays right).
            events?.CommitCheckpointed(watermark.Partitions);
            if (trainer is not null)
            {
                labels?.CommitCheckpointed(trainer.LabelOffsets);
            }
            return entry;
        }
        finally
        {
            _one.Release();
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a thread of its own at a lower CPU priority (Linux nice 10): encoding
    /// and compressing gigabytes of state yields to ingest and serving when the cores are busy, and
    /// takes whatever they leave when they are not.
    /// </summary>
    private static Task<T> InBackground<T>(Func<T> work)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            if (OperatingSystem.IsLinux())
            {
                // Only this thread (Linux priorities are per thread); lowering needs no privilege. Best effort.
                _ = NativeThreads.SetPriority(0, NativeThreads.CurrentThreadId(), 10);
            }
            try
            {
                done.SetResult(work());
            }
            catch (Exception error)
            {
                done.SetException(error);
            }
        })
        {
            IsBackground = true,
            Name = "inference-checkpoint",
        };
        thread.Start();
        return done.Task;
    }

    private static (long, long, long) Progress(FeatureWatermark events, TrainerCheckpoint? trainer) =>
        (events.BatchesApplied, trainer?.LabelsLearned + trainer?.LabelsSkipped ?? 0, trainer?.LabelOffsets.Sum(o => o.Offset + 1) ?? 0);

    private async Task<bool> OutputsCommitted(long enqueued, int giveUpAfterMs, CancellationToken cancellation)
    {
        var output = _output;
        long started = time.GetTimestamp();
        while (output is not null && output.Committed < enqueued)
        {
            if (giveUpAfterMs >= 0 && time.GetElapsedTime(started).TotalMilliseconds > giveUpAfterMs)
            {
                return false;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(OutputsPollMs), time, cancellation);
        }
        return true;
    }

    private async Task<bool> DeadLettersWritten(ICheckpointedSource? source, long produced, int giveUpAfterMs, CancellationToken cancellation)
    {
        if (source is null)
        {
            return true;
        }
        long started = time.GetTimestamp();
        long nextWarning = DeadLetterWarningMs;
        while (source.DeadLettersWritten < produced)
        {
            double waited = time.GetElapsedTime(started).TotalMilliseconds;
            if (giveUpAfterMs != Timeout.Infinite && waited > giveUpAfterMs)
            {
                return false;
            }
            if (waited > nextWarning)
            {
                CheckpointLog.WaitingForDeadLetters(logger, produced - source.DeadLettersWritten, source.Topic);
                nextWarning += DeadLetterWarningMs;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(DeadLettersPollMs), time, cancellation);
        }
        return true;
    }

    public override void Dispose()
    {
        _one.Dispose();
        base.Dispose();
    }
}

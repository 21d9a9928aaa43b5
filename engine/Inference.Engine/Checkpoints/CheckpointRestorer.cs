using System.Text.Json;
using Inference.Engine.Features;
using Inference.Kernels.Features;
using Inference.Models.Registry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Checkpoints;

/// <summary>A checkpoint that cannot be restored into this engine as configured: the start stops with this message.</summary>
public sealed class CheckpointException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Restores the newest valid checkpoint at start, before ingest and training start (it is registered
/// right after the device executor). A corrupt or partial checkpoint is skipped with the reason; one
/// taken under other feature declarations or another model shape stops the start unless configuration
/// says to discard it.
/// </summary>
internal sealed class CheckpointRestorer(CheckpointCoordinator coordinator, DeviceExecutor executor, ModelRegistry registry, TimeProvider time, ILogger<CheckpointRestorer> logger)
    : IHostedService
{
    /// <summary>
    /// The directory's checkpoints, newest first, once it is known to be readable and writable: a directory
    /// the engine cannot use fails the start here (exit 4, naming the key), not at the first checkpoint.
    /// </summary>
    private static List<CheckpointEntry> Listed(string directory)
    {
        try
        {
            Directory.CreateDirectory(directory);
            string probe = Path.Combine(directory, $".write-probe-{Environment.ProcessId}");
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
            return [.. CheckpointFiles.List(directory).Reverse()];
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException($"Inference:Checkpoints:Directory: {directory} cannot be read and written by this process: {error.Message}", error);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!coordinator.Enabled)
        {
            coordinator.MarkRestored(null);
            return Task.CompletedTask;
        }
        string directory = coordinator.Options.Directory!;
        string plan = FeatureTable.Fingerprint(executor.Plan);
        string model = Checkpoint.Fingerprint(registry.Spec);
        foreach (var entry in Listed(directory))
        {
            if (entry.Problem is not null)
            {
                CheckpointLog.Skipped(logger, entry.Path, entry.Problem);
                continue;
            }
            string? mismatch = entry.Manifest!.PlanFingerprint != plan ? "feature declarations"
                : entry.Manifest.ModelFingerprint != model ? "model shape (kind, inputs, hidden units or id dimensions)"
                : null;
            if (mismatch is not null)
            {
                if (!coordinator.Options.DiscardMismatched)
                {
                    throw new CheckpointException(
                        $"The newest checkpoint, {entry.Path}, was taken under other {mismatch} than this engine is configured with; "
                        + "restoring it would misread its state. Start with the configuration it was taken under, point "
                        + "Inference:Checkpoints:Directory elsewhere, or set Inference:Checkpoints:DiscardMismatched=true to set it aside and start from empty state.");
                }
                string setAside = Path.Combine(Path.GetDirectoryName(entry.Path)!, "discarded-" + Path.GetFileName(entry.Path));
                Directory.Move(entry.Path, setAside);
                CheckpointLog.Discarded(logger, entry.Path, mismatch, setAside);
                continue;
            }
            long started = time.GetTimestamp();
            Checkpoint checkpoint;
            try
            {
                checkpoint = CheckpointFiles.Read(entry.Path);
            }
            catch (Exception error) when (error is IOException or InvalidDataException or JsonException or InvalidCastException or UnauthorizedAccessException)
            {
                CheckpointLog.Skipped(logger, entry.Path, error.Message);
                continue;
            }
            try
            {
                executor.Restore(checkpoint.Table, checkpoint.Events);
                if (checkpoint.Trainer?.Embeddings is { } embeddings)
                {
                    executor.RestoreEmbeddings(embeddings);
                }
            }
            catch (InvalidOperationException error)
            {
                throw new CheckpointException($"Checkpoint {entry.Path} cannot be restored: {error.Message}", error);
            }
            CheckpointLog.Restored(logger, entry.Path, checkpoint.Table.Entities, checkpoint.Events.Partitions.Count, checkpoint.Events.MaxEventTimeMs,
                checkpoint.Trainer?.LabelsLearned ?? 0, time.GetElapsedTime(started).TotalMilliseconds);
            coordinator.MarkRestored(checkpoint);
            return Task.CompletedTask;
        }
        CheckpointLog.NoneFound(logger, directory);
        coordinator.MarkRestored(null);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

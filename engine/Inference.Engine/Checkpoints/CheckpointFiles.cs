using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Inference.Kernels.Features;

namespace Inference.Engine.Checkpoints;

/// <summary>A checkpoint found in a directory: its path and manifest, or why it cannot be restored.</summary>
internal sealed record CheckpointEntry(string Path, long Sequence, CheckpointManifest? Manifest, string? Problem);

/// <summary>
/// Checkpoints on disk. Each is a directory <c>checkpoint-NNNNNNNNNNNN</c>: the entity state as Arrow
/// IPC files compressed with LZ4 frames (one column per state word, a record batch per 64k occupied slots),
/// the trainer's state as JSON (a model over ids: its embedding tables in files of their own), and <c>manifest.json</c> with every file's size and SHA-256. It is
/// written into a temporary directory, each file fsynced, then renamed into place and the parent
/// directory fsynced: a checkpoint is either whole or absent, never half-written.
/// </summary>
internal static partial class CheckpointFiles
{
    public const string Prefix = "checkpoint-";
    public const string ManifestName = "manifest.json";
    private const string EntitiesName = "entities.arrow";
    private const string FreeSlotsName = "free-slots.arrow";
    private const string TrainerName = "trainer.json";
    internal const string TemporaryMarker = ".tmp-";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>Writes <paramref name="checkpoint"/> as the next checkpoint in <paramref name="directory"/>, durably, and returns its entry.</summary>
    public static CheckpointEntry Write(string directory, Checkpoint checkpoint, TimeProvider time)
    {
        var (sequence, final, temporary) = Begin(directory, Prefix);
        var files = new List<CheckpointFile>();
        List<CheckpointSegment>? segments = null;
        if (checkpoint.SegmentPartitions > 0)
        {
            // One file per events partition: a worker taking partitions over reads only theirs.
            segments = [];
            foreach (var (partition, slots) in SlotsByPartition(checkpoint.Table, checkpoint.SegmentPartitions))
            {
                string name = string.Create(CultureInfo.InvariantCulture, $"entities-{partition:D5}.arrow");
                files.Add(WriteFile(temporary, name, stream => EntityCodec.WriteEntities(stream, checkpoint.Table, slots)));
                segments.Add(new CheckpointSegment(partition, name, slots.Length));
            }
        }
        else
        {
            files.Add(WriteFile(temporary, EntitiesName, stream => EntityCodec.WriteEntities(stream, checkpoint.Table, null)));
        }
        files.Add(WriteFile(temporary, FreeSlotsName, stream => EntityCodec.WriteFreeSlots(stream, checkpoint.Table.FreeSlots)));
        if (checkpoint.Trainer is not null)
        {
            files.Add(WriteFile(temporary, TrainerName, stream => JsonSerializer.Serialize(stream, checkpoint.Trainer, Json)));
            var embeddings = checkpoint.Trainer.Embeddings ?? [];
            for (int t = 0; t < embeddings.Count; t++)
            {
                var snapshot = embeddings[t];
                files.Add(WriteFile(temporary, EmbeddingCodec.FileName(t), stream => EmbeddingCodec.Write(stream, snapshot)));
            }
        }
        var table = checkpoint.Table;
        var manifest = new CheckpointManifest(
            CheckpointManifest.CurrentFormat,
            sequence,
            time.GetUtcNow(),
            checkpoint.PlanFingerprint,
            checkpoint.ModelFingerprint,
            new CheckpointTableSummary(table.Capacity, table.Entities, table.Sequence, table.PinMark,
                EntityCodec.PerSlot(table.Longs.LongLength, table.Capacity), EntityCodec.PerSlot(table.Doubles.LongLength, table.Capacity), EntityCodec.PerSlot(table.Registers.LongLength, table.Capacity),
                checkpoint.SegmentPartitions, segments),
            new CheckpointEventSummary(checkpoint.Events.MaxEventTimeMs, checkpoint.Events.BatchesApplied, checkpoint.Events.Partitions),
            checkpoint.Trainer is { } trainer
                ? new CheckpointTrainerSummary(trainer.LabelsLearned, trainer.LabelsSkipped, trainer.BaseVersion, trainer.LabelOffsets, trainer.Embeddings?.Count ?? 0)
                : null,
            files);
        WriteFile(temporary, ManifestName, stream => JsonSerializer.Serialize(stream, manifest, Json));
        Commit(directory, temporary, final);
        return new CheckpointEntry(final, sequence, manifest, null);
    }

    /// <summary>
    /// Starts the next checkpoint named <paramref name="prefix"/> in <paramref name="directory"/>: its
    /// sequence, final path, and the empty temporary directory its files are written into.
    /// </summary>
    internal static (long Sequence, string Final, string Temporary) Begin(string directory, string prefix)
    {
        Directory.CreateDirectory(directory);
        long sequence = Complete(directory, prefix).Select(c => c.Sequence).DefaultIfEmpty(0).Max() + 1;
        string final = Path.Combine(directory, prefix + sequence.ToString("D12", CultureInfo.InvariantCulture));
        string temporary = final + TemporaryMarker + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        if (Directory.Exists(temporary))
        {
            Directory.Delete(temporary, recursive: true);
        }
        Directory.CreateDirectory(temporary);
        return (sequence, final, temporary);
    }

    /// <summary>Makes a checkpoint whose files are all written and synced durable: renamed into place, the parent directory synced.</summary>
    internal static void Commit(string directory, string temporary, string final)
    {
        DirectorySync.Sync(temporary);
        Directory.Move(temporary, final);
        DirectorySync.Sync(directory);
    }

    /// <summary>Deletes all but the newest <paramref name="keep"/> checkpoints, and temporary directories other processes left behind.</summary>
    public static void Prune(string directory, int keep) => Prune(directory, keep, Prefix);

    internal static void Prune(string directory, int keep, string prefix)
    {
        foreach (var (path, _) in Complete(directory, prefix).OrderByDescending(c => c.Sequence).Skip(keep))
        {
            Directory.Delete(path, recursive: true);
        }
        string mine = TemporaryMarker + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        foreach (var stale in Directory.EnumerateDirectories(directory, prefix + "*" + TemporaryMarker + "*"))
        {
            if (!stale.EndsWith(mine, StringComparison.Ordinal))
            {
                Directory.Delete(stale, recursive: true);
            }
        }
    }

    /// <summary>The complete checkpoints in <paramref name="directory"/> (newest last), each with its manifest or the reason it cannot be read.</summary>
    public static IReadOnlyList<CheckpointEntry> List(string directory)
    {
        var entries = new List<CheckpointEntry>();
        foreach (var (path, sequence) in Complete(directory, Prefix).OrderBy(c => c.Sequence))
        {
            CheckpointManifest? manifest = null;
            string? problem = null;
            try
            {
                manifest = ReadManifest(path);
            }
            catch (Exception error) when (error is IOException or JsonException or InvalidDataException or UnauthorizedAccessException)
            {
                problem = error.Message;
            }
            entries.Add(new CheckpointEntry(path, sequence, manifest, problem));
        }
        return entries;
    }

    /// <summary>The complete checkpoint directories named <paramref name="prefix"/> (temporary ones left out), manifests unread.</summary>
    internal static IEnumerable<(string Path, long Sequence)> Complete(string directory, string prefix)
    {
        if (!Directory.Exists(directory))
        {
            yield break;
        }
        foreach (var path in Directory.EnumerateDirectories(directory, prefix + "*"))
        {
            string name = Path.GetFileName(path);
            if (!name.Contains(TemporaryMarker, StringComparison.Ordinal)
                && long.TryParse(name.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out long sequence))
            {
                yield return (path, sequence);
            }
        }
    }

    internal static CheckpointFile WriteFile(string directory, string name, Action<Stream> write)
    {
        string path = Path.Combine(directory, name);
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        using var hashing = new HashingStream(file);
        write(hashing);
        file.Flush(flushToDisk: true);
        return new CheckpointFile(name, file.Length, hashing.Digest());
    }

    /// <summary>The occupied slots of each events partition that has any, in memory order within a partition.</summary>
    private static IEnumerable<(int Partition, int[] Slots)> SlotsByPartition(FeatureTableSnapshot table, int partitions)
    {
        var buckets = new List<int>[partitions];
        var keys = MemoryMarshal.Cast<byte, ulong>(table.Heads.AsSpan());
        for (int slot = 0; slot < table.Capacity; slot++)
        {
            ulong key = keys[slot * FeatureTableSnapshot.HeadWords];
            if (key != 0)
            {
                (buckets[EntityKey.PartitionOf(key, partitions)] ??= []).Add(slot);
            }
        }
        for (int partition = 0; partition < partitions; partition++)
        {
            if (buckets[partition] is { } slots)
            {
                yield return (partition, [.. slots]);
            }
        }
    }
}

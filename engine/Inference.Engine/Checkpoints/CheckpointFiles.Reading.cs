using System.Security.Cryptography;
using System.Text.Json;
using Inference.Engine.Features;
using Inference.Engine.Training;
using Inference.Kernels.Embeddings;

namespace Inference.Engine.Checkpoints;

/// <summary>Reading checkpoints back: the manifest, the checks against it, the whole state or some partitions' share.</summary>
internal static partial class CheckpointFiles
{
    /// <summary>Reads a checkpoint's manifest (no checksums verified).</summary>
    public static CheckpointManifest ReadManifest(string path)
    {
        using var stream = File.OpenRead(Path.Combine(path, ManifestName));
        var manifest = JsonSerializer.Deserialize<CheckpointManifest>(stream, Json) ?? throw new InvalidDataException($"{ManifestName} is empty.");
        if (manifest.Format != CheckpointManifest.CurrentFormat)
        {
            throw new InvalidDataException($"{ManifestName} has format {manifest.Format}; this engine reads format {CheckpointManifest.CurrentFormat}.");
        }
        return manifest;
    }

    /// <summary>Checks every file of a checkpoint against its manifest; throws <see cref="InvalidDataException"/> naming the first that differs.</summary>
    public static CheckpointManifest Verify(string path)
    {
        var manifest = ReadManifest(path);
        VerifyFiles(path, manifest.Files);
        return manifest;
    }

    /// <summary>Checks each of <paramref name="files"/> in <paramref name="path"/>: present, of its size and SHA-256.</summary>
    internal static void VerifyFiles(string path, IEnumerable<CheckpointFile> files)
    {
        foreach (var file in files)
        {
            string full = Path.Combine(path, file.Name);
            if (!File.Exists(full))
            {
                throw new InvalidDataException($"{file.Name} is missing.");
            }
            long bytes = new FileInfo(full).Length;
            if (bytes != file.Bytes)
            {
                throw new InvalidDataException($"{file.Name} holds {bytes} bytes; the manifest says {file.Bytes}.");
            }
            using var stream = File.OpenRead(full);
            string digest = Convert.ToHexString(SHA256.HashData(stream));
            if (!string.Equals(digest, file.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidDataException($"{file.Name} does not match its checksum (partial or corrupt).");
            }
        }
    }

    /// <summary>The trainer's state of a checkpoint (every file verified first); null when training was off.</summary>
    public static TrainerCheckpoint? ReadTrainer(string path)
    {
        var manifest = Verify(path);
        return manifest.Trainer is null ? null : ReadTrainerFile(path, manifest.Trainer);
    }

    /// <summary>Reads and verifies a whole checkpoint.</summary>
    public static Checkpoint Read(string path)
    {
        var manifest = Verify(path);
        int[] free;
        using (var stream = File.OpenRead(Path.Combine(path, FreeSlotsName)))
        {
            free = EntityCodec.ReadFreeSlots(stream);
        }
        var files = manifest.Table.Segments?.Select(s => s.File) ?? [EntitiesName];
        var table = EntityCodec.ReadTable(path, manifest, files, free);
        var trainer = manifest.Trainer is null ? null : ReadTrainerFile(path, manifest.Trainer);
        return new Checkpoint(table, Watermark(manifest), trainer, manifest.ModelFingerprint);
    }

    /// <summary>
    /// Only the entities of <paramref name="partitions"/> from a checkpoint written one file per partition
    /// over <paramref name="partitionCount"/> partitions, reading and verifying only their files; null when
    /// the checkpoint is not written that way (read it whole instead). Every other slot is empty.
    /// </summary>
    public static Checkpoint? ReadPartitions(string path, IReadOnlySet<int> partitions, int partitionCount)
    {
        ArgumentNullException.ThrowIfNull(partitions);
        var manifest = ReadManifest(path);
        if (manifest.Table.SegmentPartitions != partitionCount || manifest.Table.Segments is not { } segments)
        {
            return null;
        }
        var wanted = segments.Where(s => partitions.Contains(s.Partition)).Select(s => s.File).ToHashSet(StringComparer.Ordinal);
        VerifyFiles(path, manifest.Files.Where(f => wanted.Contains(f.Name)));
        var table = EntityCodec.ReadTable(path, manifest, wanted, free: []);
        return new Checkpoint(table, Watermark(manifest), null, manifest.ModelFingerprint, partitionCount);
    }

    private static FeatureWatermark Watermark(CheckpointManifest manifest) =>
        new(manifest.Events.Offsets, manifest.Events.MaxEventTimeMs, manifest.Events.BatchesApplied);

    private static TrainerCheckpoint ReadTrainerFile(string path, CheckpointTrainerSummary summary)
    {
        TrainerCheckpoint trainer;
        using (var stream = File.OpenRead(Path.Combine(path, TrainerName)))
        {
            trainer = JsonSerializer.Deserialize<TrainerCheckpoint>(stream, Json) ?? throw new InvalidDataException($"{TrainerName} is empty.");
        }
        if (summary.EmbeddingTables == 0)
        {
            return trainer;
        }
        var tables = new EmbeddingSnapshot[summary.EmbeddingTables];
        for (int t = 0; t < tables.Length; t++)
        {
            string name = EmbeddingCodec.FileName(t);
            using var stream = File.OpenRead(Path.Combine(path, name));
            tables[t] = EmbeddingCodec.Read(stream, name);
        }
        return trainer with { Embeddings = tables };
    }
}

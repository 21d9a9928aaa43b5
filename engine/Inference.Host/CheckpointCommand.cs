using System.Globalization;
using Inference.Engine.Checkpoints;
using Inference.Engine.Kafka;

namespace Inference.Host;

/// <summary><c>inference checkpoint inspect DIR</c>: what the checkpoints in a directory (or one checkpoint) hold, verified.</summary>
internal static class CheckpointCommand
{
    public static int Inspect(string path)
    {
        if (!Directory.Exists(path))
        {
            Console.Error.WriteLine($"inference: {path} is not a directory.");
            return 1;
        }
        if (File.Exists(Path.Combine(path, CheckpointFiles.ManifestName)))
        {
            return Print(path) ? 0 : 1;
        }
        var entries = CheckpointFiles.List(path);
        if (entries.Count == 0)
        {
            Console.WriteLine($"{path}: no checkpoints.");
            return 1;
        }
        bool newestValid = false;
        for (int i = entries.Count - 1; i >= 0; i--)
        {
            bool valid = Print(entries[i].Path);
            newestValid |= valid;
            Console.WriteLine();
        }
        // Exit 0 when some checkpoint can be restored.
        return newestValid ? 0 : 1;
    }

    private static bool Print(string path)
    {
        CheckpointManifest manifest;
        try
        {
            manifest = CheckpointFiles.Verify(path);
        }
        catch (Exception error) when (error is IOException or InvalidDataException or System.Text.Json.JsonException or UnauthorizedAccessException)
        {
            Console.WriteLine($"{path}: INVALID, would be skipped on restore: {error.Message}");
            return false;
        }
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"{path}: valid (every file matches its checksum)"));
        Console.WriteLine(string.Create(c, $"  sequence        {manifest.Sequence}, taken {manifest.CreatedUtc:u}"));
        Console.WriteLine(string.Create(c, $"  fingerprints    features {manifest.PlanFingerprint[..16]}…, model {manifest.ModelFingerprint[..16]}…"));
        var table = manifest.Table;
        Console.WriteLine(string.Create(c, $"  feature state   {table.Entities} entities in {table.Capacity} slots ({table.LongsPerSlot} int64, {table.DoublesPerSlot} double, {table.RegistersPerSlot} int32 state words per slot)"));
        var events = manifest.Events;
        string newest = events.MaxEventTimeMs > 0 ? DateTimeOffset.FromUnixTimeMilliseconds(events.MaxEventTimeMs).ToString("u", c) : "none";
        Console.WriteLine(string.Create(c, $"  events          {events.BatchesApplied} batches applied, newest event {newest}; next offsets {Offsets(events.Offsets)}"));
        if (manifest.Trainer is { } trainer)
        {
            Console.WriteLine(string.Create(c, $"  trainer         {trainer.LabelsLearned} labels learned, {trainer.LabelsSkipped} skipped, parameter-server base version {trainer.BaseVersion}; next offsets {Offsets(trainer.Offsets)}"));
        }
        else
        {
            Console.WriteLine("  trainer         none (training was off)");
        }
        foreach (var file in manifest.Files)
        {
            Console.WriteLine(string.Create(c, $"  file            {file.Name,-18} {file.Bytes,12:N0} bytes  sha256 {file.Sha256[..16]}…"));
        }
        return true;
    }

    private static string Offsets(IReadOnlyList<PartitionOffset> offsets) =>
        offsets.Count == 0 ? "none" : string.Join(", ", offsets.Select(o => string.Create(CultureInfo.InvariantCulture, $"{o.Topic}/{o.Partition}@{o.Offset + 1}")));
}

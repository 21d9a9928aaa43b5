using System.Text.Json;
using Inference.Engine.Sync;

namespace Inference.Engine.Checkpoints;

/// <summary>The manifest of a parameter shard's checkpoint: which version it holds and every file with its size and SHA-256.</summary>
internal sealed record ShardManifest(int Format, long Sequence, DateTimeOffset CreatedAt, long Version, int Workers, IReadOnlyList<CheckpointFile> Files)
{
    public const int CurrentFormat = 1;
}

/// <summary>
/// A parameter shard's checkpoints, in the engine's checkpoint format: a directory
/// <c>parameters-NNNNNNNNNNNN</c> per checkpoint holding <c>shard.json</c> (version, parameters, each
/// worker's last applied sequence and input statistics) and <c>manifest.json</c> with its size and
/// SHA-256, written into a temporary directory, fsynced and renamed into place: whole or absent.
/// </summary>
internal static class ShardCheckpoints
{
    public const string Prefix = "parameters-";
    private const string StateName = "shard.json";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Writes <paramref name="state"/> as the next checkpoint in <paramref name="directory"/>, durably, and returns its path.</summary>
    public static string Write(string directory, ShardState state, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(state);
        var (sequence, final, temporary) = CheckpointFiles.Begin(directory, Prefix);
        var file = CheckpointFiles.WriteFile(temporary, StateName, stream => JsonSerializer.Serialize(stream, state, Json));
        var manifest = new ShardManifest(ShardManifest.CurrentFormat, sequence, time.GetUtcNow(), state.Version, state.Applied.Count, [file]);
        CheckpointFiles.WriteFile(temporary, CheckpointFiles.ManifestName, stream => JsonSerializer.Serialize(stream, manifest, Json));
        CheckpointFiles.Commit(directory, temporary, final);
        return final;
    }

    /// <summary>Reads and verifies one checkpoint; throws <see cref="InvalidDataException"/> naming what is wrong.</summary>
    public static ShardState Read(string path)
    {
        try
        {
            ShardManifest manifest;
            using (var stream = File.OpenRead(Path.Combine(path, CheckpointFiles.ManifestName)))
            {
                manifest = JsonSerializer.Deserialize<ShardManifest>(stream, Json) ?? throw new InvalidDataException("The manifest is empty.");
            }
            if (manifest.Format != ShardManifest.CurrentFormat)
            {
                throw new InvalidDataException($"The manifest has format {manifest.Format}; this engine reads format {ShardManifest.CurrentFormat}.");
            }
            CheckpointFiles.VerifyFiles(path, manifest.Files);
            using var state = File.OpenRead(Path.Combine(path, StateName));
            return JsonSerializer.Deserialize<ShardState>(state, Json) ?? throw new InvalidDataException($"{StateName} is empty.");
        }
        catch (Exception error) when (error is JsonException or IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException(error.Message, error);
        }
    }

    /// <summary>
    /// The newest checkpoint that reads whole, and the ones set aside on the way (newer but damaged), or
    /// null when the directory holds none.
    /// </summary>
    public static (string Path, ShardState State)? ReadNewest(string directory, Action<string, string> setAside)
    {
        ArgumentNullException.ThrowIfNull(setAside);
        foreach (var (path, _) in CheckpointFiles.Complete(directory, Prefix).OrderByDescending(c => c.Sequence))
        {
            try
            {
                return (path, Read(path));
            }
            catch (InvalidDataException error)
            {
                setAside(path, error.Message);
            }
        }
        return null;
    }

    /// <summary>Deletes all but the newest <paramref name="keep"/> checkpoints.</summary>
    public static void Prune(string directory, int keep) => CheckpointFiles.Prune(directory, keep, Prefix);
}

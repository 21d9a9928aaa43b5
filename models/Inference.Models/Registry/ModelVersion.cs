using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using Inference.Models.Parameters;

namespace Inference.Models.Registry;

/// <summary>How a model version came to be.</summary>
public enum ModelOrigin
{
    /// <summary>The spec's seeded initial weights.</summary>
    Seeded,

    /// <summary>A file brought from elsewhere (PyTorch): at start, or registered as a candidate.</summary>
    Imported,

    /// <summary>The online learner's weights, published on its interval.</summary>
    Online,

    /// <summary>The parameter server's merged weights (a pool).</summary>
    Pool,

    /// <summary>The weights a checkpoint held, at a restart.</summary>
    Restored,

    /// <summary>A candidate made the serving model (by command or because it validated better).</summary>
    Promoted,

    /// <summary>An earlier version served again (by command or because the newer one validated worse).</summary>
    Rollback,
}

/// <summary>
/// One version in the registry's lineage: its number, a content id (the same weights have the same id on every node
/// and across restarts), the version it was made from, when and how.
/// </summary>
/// <param name="Version">The engine's version number (continues across restarts from a checkpoint).</param>
/// <param name="Id">Hex of the first 8 bytes of SHA-256 over the spec's kind and every tensor's name, shape and values.</param>
/// <param name="Parent">The version serving when this one was made (0: none).</param>
/// <param name="Created">When it was made.</param>
/// <param name="Origin">How it was made.</param>
/// <param name="Note">Where it came from, in words (a file, the version rolled back from and why).</param>
public sealed record ModelVersion(long Version, string Id, long Parent, DateTimeOffset Created, ModelOrigin Origin, string Note)
{
    /// <summary>The content id of <paramref name="parameters"/> for a model of <paramref name="kind"/>.</summary>
    public static string ContentId(ModelKind kind, ParameterSet parameters)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(System.Text.Encoding.UTF8.GetBytes(kind.ToString()));
        Span<byte> scratch = stackalloc byte[8];
        foreach (var parameter in parameters.Parameters)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(parameter.Name));
            foreach (long dimension in parameter.Shape)
            {
                BinaryPrimitives.WriteInt64LittleEndian(scratch, dimension);
                hash.AppendData(scratch);
            }
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(parameter.Values.AsSpan()));
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset().AsSpan(0, 8));
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"v{Version} ({Id}, {Origin} from v{Parent})");
}

/// <summary>How a candidate takes part in serving.</summary>
public enum CandidateMode
{
    /// <summary>Scores every request beside the serving model; its scores are logged, never answered.</summary>
    Shadow,

    /// <summary>Answers the requests of a share of the entities (by the entity's hash).</summary>
    Canary,
}

/// <summary>
/// A registered candidate: its version record (a learner's newest publish), how it serves, whether it may be promoted
/// without a command, which registration it is (the same across a learner's publishes) and, for a candidate that
/// learns, its hyperparameters in words (null for a file).
/// </summary>
public sealed record CandidateInfo(ModelVersion Version, CandidateMode Mode, double CanaryShare, bool AutoPromote, long Candidacy = 0, string? Learner = null);

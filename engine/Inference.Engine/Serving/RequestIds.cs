using System.Buffers;
using Inference.Engine.Features;
using Inference.Kernels.Features;
using Inference.Proto.V1;

namespace Inference.Engine.Serving;

/// <summary>
/// A Score row's ids for a model over ids: each id input of source <c>Request</c> from the row's <c>ids</c>
/// entry of its name, each of source <c>Entity</c> from the row's entity (those of source <c>LastOf</c>
/// are the entity's state, read with its features). A row must bring every request id
/// the model reads and no other (a misspelled name is refused, not read as an unknown id).
/// </summary>
internal sealed class RequestIds(IReadOnlyList<IdInputOptions> inputs)
{
    private readonly HashSet<string> _names = [.. inputs.Where(i => i.Source == IdSource.Request).Select(i => i.Name)];

    /// <summary>What is wrong with the row's ids (to follow <c>rows[r].</c>), or null.</summary>
    public string? Problem(ScoreRow row)
    {
        foreach (string name in _names)
        {
            if (!row.Ids.TryGetValue(name, out string? value) || string.IsNullOrEmpty(value))
            {
                return $"ids has no '{name}'; the model reads it (Inference:Model:Ids).";
            }
        }
        foreach (string name in row.Ids.Keys)
        {
            if (!_names.Contains(name))
            {
                return $"ids names '{name}', which the model does not read (it reads {(_names.Count == 0 ? "no request ids" : string.Join(", ", _names.Order()))}).";
            }
        }
        return null;
    }

    /// <summary>The rows' ids hashed, one per id input per row, in a pooled array (the request has passed <see cref="Problem"/>).</summary>
    public ulong[] Hash(ScoreRequest request, ulong[] entities)
    {
        int rows = request.Rows.Count;
        var ids = ArrayPool<ulong>.Shared.Rent(rows * inputs.Count);
        for (int r = 0; r < rows; r++)
        {
            for (int i = 0; i < inputs.Count; i++)
            {
                // A LastOf id is the entity's state: the executor fills it in when it reads the features.
                ids[r * inputs.Count + i] = inputs[i].Source switch
                {
                    IdSource.Entity => entities[r],
                    IdSource.Request => EntityKey.Hash(request.Rows[r].Ids[inputs[i].Name]),
                    _ => 0,
                };
            }
        }
        return ids;
    }
}

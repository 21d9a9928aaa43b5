using Inference.Proto.V1;

namespace Inference.Client;

/// <summary>Putting the answers to parts of one Score request back together, in request order.</summary>
public static class ScoreResponses
{
    /// <summary>
    /// One response for a request of <paramref name="rows"/> rows from the answers to its parts (each with
    /// the request's row indices it covers, in order): scores, request ids and origins by row; the
    /// watermark the union of theirs; model_version the first part's; row_versions per row when a part has them.
    /// </summary>
    public static ScoreResponse Merge(int rows, IReadOnlyList<(IReadOnlyList<int> Rows, ScoreResponse Answer)> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        var scores = new float[rows];
        var ids = new string[rows];
        var origins = new RowOrigin?[rows];
        var versions = new long[rows];
        bool canary = false;
        var watermark = new FeatureWatermark();
        foreach (var (indices, answer) in parts)
        {
            for (int j = 0; j < indices.Count; j++)
            {
                scores[indices[j]] = answer.Scores[j];
                ids[indices[j]] = j < answer.RequestIds.Count ? answer.RequestIds[j] : "";
                origins[indices[j]] = j < answer.Origins.Count ? answer.Origins[j] : null;
                versions[indices[j]] = j < answer.RowVersions.Count ? answer.RowVersions[j] : answer.ModelVersion;
            }
            canary |= answer.RowVersions.Count > 0;
            foreach (var entry in answer.Watermark?.Partitions ?? [])
            {
                if (!watermark.Partitions.Any(p => p.Topic == entry.Topic && p.Partition == entry.Partition))
                {
                    watermark.Partitions.Add(entry);
                }
            }
            watermark.MaxEventTimeMs = Math.Max(watermark.MaxEventTimeMs, answer.Watermark?.MaxEventTimeMs ?? 0);
            watermark.BatchesApplied += answer.Watermark?.BatchesApplied ?? 0;
        }
        var merged = new ScoreResponse { ModelVersion = parts.Count > 0 ? parts[0].Answer.ModelVersion : 0, Watermark = watermark };
        merged.Scores.Add(scores);
        merged.RequestIds.Add(ids);
        if (canary)
        {
            // A canary answered rows of some part: every row's version, as each part named it.
            merged.RowVersions.Add(versions);
        }
        if (origins.All(o => o is not null))
        {
            merged.Origins.Add(origins!);
        }
        return merged;
    }
}

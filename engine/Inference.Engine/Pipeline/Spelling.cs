namespace Inference.Engine.Pipeline;

/// <summary>Suggestions for a misspelled name: the candidate at the least edit distance.</summary>
internal static class Spelling
{
    /// <summary>The nearest candidate, or null when none is within a third of the name's length (at least two edits): a far one would only mislead.</summary>
    public static string? Nearest(string name, IEnumerable<string> candidates)
    {
        string best = "";
        int bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            int distance = Distance(name, candidate);
            if (distance < bestDistance)
            {
                (best, bestDistance) = (candidate, distance);
            }
        }
        return bestDistance <= Math.Max(2, name.Length / 3) ? best : null;
    }

    /// <summary>Levenshtein distance, ignoring case.</summary>
    public static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}

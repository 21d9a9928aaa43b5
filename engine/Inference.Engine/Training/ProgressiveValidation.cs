namespace Inference.Engine.Training;

/// <summary>How a model did on labels it scored before learning from them.</summary>
/// <param name="Labels">Labels counted.</param>
/// <param name="LogLoss">Mean log loss (scores clamped to [1e-7, 1 − 1e-7]).</param>
/// <param name="Auc">Area under the ROC curve (soft labels weigh as that much positive and one minus it negative; ties count half); NaN without both classes.</param>
/// <param name="MeanScore">Mean score.</param>
/// <param name="PositiveRate">Mean label: calibration is <see cref="MeanScore"/> over it.</param>
internal readonly record struct ValidationSummary(long Labels, double LogLoss, double Auc, double MeanScore, double PositiveRate)
{
    public static readonly ValidationSummary Empty = new(0, double.NaN, double.NaN, double.NaN, double.NaN);
}

/// <summary>
/// Progressive validation: each label is scored by the model version serving when it arrives, before any
/// model learns from it, and kept with its score and that version in a sliding window of the last
/// <c>Inference:Training:ValidationWindow</c> labels. Log loss, AUC and calibration are computed over the window
/// (and per version within it) when read: AUC exactly, by sorting the window's scores. Written by the trainer,
/// read by metrics and <c>GetModel</c>.
/// </summary>
internal sealed class ProgressiveValidation
{
    private readonly object _gate = new();
    private readonly float[] _scores;
    private readonly float[] _labels;
    private readonly long[] _versions;
    private int _next;
    private int _count;
    private long _total;

    public ProgressiveValidation(int window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        _scores = new float[window];
        _labels = new float[window];
        _versions = new long[window];
    }

    public int Window => _scores.Length;

    /// <summary>Labels counted since the start.</summary>
    public long Total => Interlocked.Read(ref _total);

    /// <summary>Adds labels with the scores <paramref name="version"/> gave them before any learning from them.</summary>
    public void Add(ReadOnlySpan<float> scores, ReadOnlySpan<float> labels, long version)
    {
        Span<long> versions = scores.Length <= 256 ? stackalloc long[scores.Length] : new long[scores.Length];
        versions.Fill(version);
        Add(scores, labels, versions);
    }

    /// <summary>Adds labels with the scores they were answered with before any learning from them, and the version that answered each.</summary>
    public void Add(ReadOnlySpan<float> scores, ReadOnlySpan<float> labels, ReadOnlySpan<long> versions)
    {
        lock (_gate)
        {
            for (int i = 0; i < scores.Length; i++)
            {
                _scores[_next] = scores[i];
                _labels[_next] = labels[i];
                _versions[_next] = versions[i];
                _next = (_next + 1) % _scores.Length;
                _count = Math.Min(_count + 1, _scores.Length);
            }
            Interlocked.Add(ref _total, scores.Length);
        }
    }

    /// <summary>The window's labels, oldest first: (score, label, version).</summary>
    public (float[] Scores, float[] Labels, long[] Versions) Snapshot()
    {
        lock (_gate)
        {
            var scores = new float[_count];
            var labels = new float[_count];
            var versions = new long[_count];
            int start = (_next - _count + _scores.Length) % _scores.Length;
            for (int i = 0; i < _count; i++)
            {
                int at = (start + i) % _scores.Length;
                (scores[i], labels[i], versions[i]) = (_scores[at], _labels[at], _versions[at]);
            }
            return (scores, labels, versions);
        }
    }

    /// <summary>Over the whole window, and per version within it (newest version first, at most <paramref name="versions"/>).</summary>
    public (ValidationSummary Window, IReadOnlyList<(long Version, ValidationSummary Summary)> Versions) Summarise(int versions = 16)
    {
        var (scores, labels, owners) = Snapshot();
        var whole = Summarise(scores, labels);
        var perVersion = new List<(long, ValidationSummary)>();
        if (versions == 0)
        {
            return (whole, perVersion);
        }
        foreach (var group in Enumerable.Range(0, scores.Length).GroupBy(i => owners[i]).OrderByDescending(g => g.Key).Take(versions))
        {
            var members = group.ToArray();
            perVersion.Add((group.Key, Summarise([.. members.Select(i => scores[i])], [.. members.Select(i => labels[i])])));
        }
        return (whole, perVersion);
    }

    /// <summary>The summary of scored labels.</summary>
    public static ValidationSummary Summarise(float[] scores, float[] labels)
    {
        int n = scores.Length;
        if (n == 0)
        {
            return ValidationSummary.Empty;
        }
        double loss = 0, scoreSum = 0, labelSum = 0;
        for (int i = 0; i < n; i++)
        {
            double p = Math.Clamp(scores[i], 1e-7, 1 - 1e-7);
            loss -= labels[i] * Math.Log(p) + (1 - labels[i]) * Math.Log(1 - p);
            scoreSum += scores[i];
            labelSum += labels[i];
        }
        return new ValidationSummary(n, loss / n, Auc(scores, labels), scoreSum / n, labelSum / n);
    }

    /// <summary>
    /// The AUC of <paramref name="scores"/> against <paramref name="labels"/>: over scores in ascending order, each
    /// group of equal scores adds its positive weight times the negative weight below it, plus half its own pairs.
    /// </summary>
    public static double Auc(float[] scores, float[] labels)
    {
        var order = Enumerable.Range(0, scores.Length).ToArray();
        Array.Sort([.. scores], order);
        double negativesBelow = 0, pairs = 0, positives = 0, negatives = 0;
        for (int i = 0; i < order.Length;)
        {
            double groupPositive = 0, groupNegative = 0;
            int j = i;
            for (; j < order.Length && scores[order[j]] == scores[order[i]]; j++)
            {
                groupPositive += labels[order[j]];
                groupNegative += 1 - labels[order[j]];
            }
            pairs += groupPositive * negativesBelow + 0.5 * groupPositive * groupNegative;
            negativesBelow += groupNegative;
            positives += groupPositive;
            negatives += groupNegative;
            i = j;
        }
        return positives > 0 && negatives > 0 ? pairs / (positives * negatives) : double.NaN;
    }
}

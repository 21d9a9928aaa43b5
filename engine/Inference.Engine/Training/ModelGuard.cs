namespace Inference.Engine.Training;

/// <summary>What the guard decided after a window of labels.</summary>
internal enum GuardDecision
{
    /// <summary>Not enough labels yet, or nothing to do.</summary>
    None,

    /// <summary>The candidate validated better than the serving model by the margin: it serves from now on.</summary>
    Promote,

    /// <summary>The candidate validated worse than the serving model by the bound: withdrawn, never served as the model.</summary>
    Withdraw,

    /// <summary>The serving model validated worse than its baseline by the bound: the baseline serves again.</summary>
    RollBack,

    /// <summary>The serving model held up against its baseline: it becomes the baseline.</summary>
    Advance,
}

/// <summary>Log losses of two models over the same labels, summed over a window of labels (pure logic).</summary>
internal struct PairedWindow
{
    public long Labels;
    public double Loss;
    public double OtherLoss;

    public readonly double MeanLoss => Loss / Labels;

    public readonly double OtherMeanLoss => OtherLoss / Labels;

    public void Add(long labels, double loss, double otherLoss)
    {
        Labels += labels;
        Loss += loss;
        OtherLoss += otherLoss;
    }

    /// <summary>
    /// A candidate's window (loss: the serving model's; other: the candidate's) once it holds <paramref name="labels"/>:
    /// withdrawn when the candidate is worse by more than <paramref name="rollbackMargin"/>, promoted (when allowed)
    /// when it is better by more than <paramref name="promoteMargin"/>.
    /// </summary>
    public readonly GuardDecision ForCandidate(int labels, double promoteMargin, double rollbackMargin, bool autoPromote) =>
        Labels < labels ? GuardDecision.None
        : OtherMeanLoss > MeanLoss + rollbackMargin ? GuardDecision.Withdraw
        : autoPromote && OtherMeanLoss < MeanLoss - promoteMargin ? GuardDecision.Promote
        : GuardDecision.Advance;

    /// <summary>The serving model's window (loss: serving; other: its baseline): rolled back when worse than the baseline by more than the margin.</summary>
    public readonly GuardDecision ForServing(int labels, double rollbackMargin) =>
        Labels < labels ? GuardDecision.None : MeanLoss > OtherMeanLoss + rollbackMargin ? GuardDecision.RollBack : GuardDecision.Advance;
}

/// <summary>Cumulative progressive figures of one version: labels it scored before learning from them.</summary>
internal sealed record VersionFigures(long Version, long Labels, double LossSum, double ScoreSum, double LabelSum);

/// <summary>Which entities a canary candidate answers: a share of them by their key's hash, the same on every node and for every call.</summary>
internal static class Canary
{
    /// <summary>True when the entity of key <paramref name="entity"/> falls in the canary's <paramref name="share"/> (0 to 1).</summary>
    public static bool Answers(ulong entity, double share) =>
        // The key is a hash already; its top 53 bits as a fraction in [0, 1).
        (entity >> 11) * (1.0 / (1UL << 53)) < share;
}

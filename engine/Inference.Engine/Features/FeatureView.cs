using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>
/// What code that runs on the device thread after an apply may do with the feature state: read rows,
/// never change them. Valid only during the call it is handed to.
/// </summary>
internal readonly struct FeatureView
{
    private readonly FeatureTable _table;

    internal FeatureView(FeatureTable table) => _table = table;

    /// <summary>Features per row.</summary>
    public int Width => _table.Width;

    /// <summary>The rows of <paramref name="entities"/> as of <paramref name="nowMs"/>, standardised unless <paramref name="transform"/> is false.</summary>
    public void Gather(ReadOnlySpan<ulong> entities, long nowMs, Span<float> output, bool transform = true, Span<ulong> lastKeys = default) =>
        _table.Gather(entities, nowMs, output, transform, lastKeys);

    /// <summary>The plan's last keys per row (the LastOf ids of a model over ids).</summary>
    public int LastKeys => _table.Plan.LastKeyFields.Count;
}

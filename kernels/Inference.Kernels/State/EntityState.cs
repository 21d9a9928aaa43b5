namespace Inference.Kernels.State;

/// <summary>One entity's raw aggregates, read back from the accelerator.</summary>
/// <param name="Count">Events applied.</param>
/// <param name="MaxEventTimeMs">The newest event time applied; the decayed sums are as of this time.</param>
/// <param name="Sums">Per field, the sum of values.</param>
/// <param name="DecayedSums">Per field, Σ value · 2^(−(MaxEventTimeMs − t) / halfLife).</param>
public sealed record EntityState(long Count, long MaxEventTimeMs, double[] Sums, double[] DecayedSums);

namespace Inference.Kernels.Embeddings;

/// <summary>
/// An embedding table's whole state on the host, in an order that does not depend on where the ids sat
/// in the device's hash table: ids ascending, with their count, the last time they were learned from
/// and their row (an index into <see cref="Values"/>; 0, the default row, for an id without one yet).
/// </summary>
/// <param name="Dimension">Values per row.</param>
/// <param name="Optimizer">The optimizer whose state <see cref="State"/> holds.</param>
/// <param name="Keys">The ids (64-bit hashes as the table stores them), ascending.</param>
/// <param name="LastMs">Per id: the newest time it was learned from.</param>
/// <param name="Counts">Per id: the times it was learned from.</param>
/// <param name="Rows">Per id: its row, or 0 when it has none.</param>
/// <param name="Values">The rows' values, the default row first: (rows + 1) × dimension.</param>
/// <param name="State">The rows' optimizer state, laid out as in the table: (rows + 1) × state width × dimension.</param>
public sealed record EmbeddingSnapshot(int Dimension, SparseOptimizerKind Optimizer, ulong[] Keys, long[] LastMs, int[] Counts, int[] Rows, float[] Values, float[] State)
{
    /// <summary>Rows held, not counting the default row.</summary>
    public int RowCount => Values.Length / Dimension - 1;
}

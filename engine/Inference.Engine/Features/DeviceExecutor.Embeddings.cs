using Inference.Kernels.Embeddings;

namespace Inference.Engine.Features;

/// <summary>The device executor's embedding tables (a model over ids): owned like the feature table, touched only by work it runs.</summary>
internal sealed partial class DeviceExecutor
{
    /// <summary>The embedding tables of a model over ids; null without one. Only work the executor runs may call them.</summary>
    public EmbeddingStore? Embeddings => _embeddings;

    /// <summary>Every table's whole state, in declaration order (a checkpoint's share, taken between two learning steps).</summary>
    public IReadOnlyList<EmbeddingSnapshot>? SnapshotEmbeddings() =>
        _embeddings is null ? null : OnDevice<IReadOnlyList<EmbeddingSnapshot>>(() => [.. _embeddings.Tables.Select(t => t.Snapshot())]);

    /// <summary>Restores every table from a checkpoint's snapshots; their count and dimensions must be the model's.</summary>
    public void RestoreEmbeddings(IReadOnlyList<EmbeddingSnapshot> tables) =>
        OnDevice<object?>(() =>
        {
            var store = _embeddings;
            if (store is null || store.Count != tables.Count)
            {
                throw new InvalidOperationException($"the checkpoint holds {tables.Count} embedding tables; this engine's model reads {store?.Count ?? 0} id inputs.");
            }
            for (int t = 0; t < tables.Count; t++)
            {
                try
                {
                    store.Tables[t].Restore(tables[t]);
                }
                catch (ArgumentException error)
                {
                    throw new InvalidOperationException($"the embedding table of id input '{store.Inputs[t].Name}': {error.Message}", error);
                }
            }
            store.Counted();
            return null;
        });
}

using Apache.Arrow;
using Inference.Engine.Kafka;
using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>
/// The features stage as the other stages see it: applies Arrow micro-batches and reads model inputs,
/// each as work sent to the <see cref="DeviceExecutor"/> (the only code that touches the device).
/// A read sees either none or all of a batch and reports the watermark it saw.
/// </summary>
internal sealed class FeatureStore(DeviceExecutor executor)
{
    public FeaturePlan Plan => executor.Plan;

    /// <summary>Model-input columns per row: one per declared feature.</summary>
    public int FeatureWidth => executor.Plan.Count;

    public string AcceleratorDescription => executor.AcceleratorDescription;

    public int Entities => executor.Entities;

    /// <summary>The watermark the executor published after its last apply (no round trip; what Score answers with).</summary>
    public FeatureWatermark Published => executor.Watermark;

    /// <summary>The watermark of the state as it is now (a round trip through the executor).</summary>
    public FeatureWatermark Watermark => executor.Read((_, watermark) => watermark);

    /// <summary>
    /// Applies one micro-batch (entity: uint64, ts: int64, a float column per numeric field, a
    /// uint64 column per key field, in the plan's order) and advances the watermark to
    /// <paramref name="offsets"/>. Returns the events applied.
    /// </summary>
    public int Apply(RecordBatch batch, ReadOnlySpan<PartitionOffset> offsets) => executor.Apply(batch, offsets);

    /// <summary>Journals the events applied from now on (<paramref name="events"/> at most) for point-in-time reads of labels; call before ingest starts.</summary>
    public void KeepJournal(int events) => executor.KeepJournal(events);

    /// <summary>Id inputs per row of a model over ids (0 without one).</summary>
    public int IdInputs => executor.Embeddings?.Count ?? 0;

    /// <summary>Embedding values per row of a model over ids (0 without one).</summary>
    public int EmbeddingWidth => executor.Embeddings?.Width ?? 0;

    /// <summary>
    /// Point-in-time model inputs for the first <paramref name="rows"/> entities: each row as of its own
    /// event time (training joins labels this way). For a model over ids, in the same read, the rows' ids
    /// (<see cref="IdInputs"/> per row) are counted and dated at the newest of the times, and their table
    /// rows and embeddings written out for the learning step. Returns how many rows are inexact.
    /// </summary>
    /// <remarks>Rows <paramref name="served"/> marks keep the ids they bring, LastOf ones included (a label joined with what Score served).</remarks>
    public (int Inexact, int Replayed) GatherAsOf(ulong[] entities, long[] timesMs, int rows, float[] output, bool[] inexact, LearnedIds? ids = null, bool[]? served = null) =>
        executor.Read((table, _) =>
        {
            table.GatherAsOf(entities.AsSpan(0, rows), timesMs.AsSpan(0, rows), output, inexact, lastKeys: ids?.LastKeys);
            // Rows whose running aggregates include events after their time: read again from their journaled events.
            int replayed = executor.Replay?.Correct(table, entities.AsSpan(0, rows), timesMs.AsSpan(0, rows), output, inexact, ids?.LastKeys ?? default, served) ?? 0;
            if (ids is not null && executor.Embeddings is { } store)
            {
                store.FillLastOf(ids.Ids, rows, ids.LastKeys, served);
                long newest = long.MinValue;
                foreach (long time in timesMs.AsSpan(0, rows))
                {
                    newest = Math.Max(newest, time);
                }
                store.Touch(ids.Ids, rows, newest, ids.Rows, ids.Embeddings);
            }
            int count = 0;
            foreach (bool flag in inexact.AsSpan(0, rows))
            {
                count += flag ? 1 : 0;
            }
            return (count, replayed);
        });

    /// <summary>A model over ids: the ids holding a row of their own in each table, in declaration order (one read between units of work).</summary>
    public Task<long[]> EmbeddingRowsAsync() => executor.ReadAsync((_, _) => executor.Embeddings is { } store ? store.Tables.Select(t => (long)t.Rows).ToArray() : []);

    /// <summary>In a pool, a model over ids: the changes of the rows touched since the last call, one block per id input.</summary>
    public IReadOnlyList<(string Input, int Dimension, ulong[] Keys, float[] Values)> TakeEmbeddingChanges() =>
        executor.Read((_, _) => executor.Embeddings?.TakeChanges() ?? []);

    /// <summary>In a pool, a model over ids: every row's offset from its initial values (to seed a parameter server that restarted empty).</summary>
    public IReadOnlyList<(string Input, int Dimension, ulong[] Keys, float[] Values)> EmbeddingOffsets() =>
        executor.Read((_, _) => executor.Embeddings?.Offsets() ?? []);

    /// <summary>In a pool, a model over ids: takes up the rows the parameter server holds (offsets from their initial values).</summary>
    public void AdoptEmbeddingRows(IReadOnlyList<(string Input, int Dimension, ulong[] Keys, float[] Values)> rows) =>
        executor.Read((_, _) =>
        {
            foreach (var (input, dimension, keys, values) in rows)
            {
                executor.Embeddings?.Adopt(input, dimension, keys, values);
            }
            return 0;
        });

    /// <summary>A model over ids: every embedding table's state (for the trainer's part of a checkpoint); null without one.</summary>
    public IReadOnlyList<Inference.Kernels.Embeddings.EmbeddingSnapshot>? SnapshotEmbeddings() => executor.SnapshotEmbeddings();

    /// <summary>One optimizer step of the embedding tables on the rows the last <see cref="GatherAsOf"/> of <paramref name="ids"/> touched.</summary>
    public void StepEmbeddings(LearnedIds ids, int rows) =>
        executor.Read((_, _) =>
        {
            executor.Embeddings!.Step(ids.Rows, rows, ids.Gradients);
            return 0;
        });

    /// <summary>
    /// Untransformed feature values of <paramref name="entities"/> (rows of <see cref="FeatureWidth"/>) as of
    /// the newest event applied, whether the table holds each, and the watermark they were read at; one read.
    /// </summary>
    /// <remarks>Null, at once, when <see cref="Serving.ServingOptions.MaxQueuedReads"/> reads wait already.</remarks>
    public Task<(float[] Values, bool[] Found, FeatureWatermark Watermark)>? ReadManyAsync(IReadOnlyList<string> entities)
    {
        var keys = new ulong[entities.Count];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = EntityKey.Hash(entities[i]);
        }
        return executor.TryReadAsync((table, watermark) =>
        {
            var found = new bool[keys.Length];
            for (int i = 0; i < keys.Length; i++)
            {
                found[i] = table.Find(keys[i]) is not null;
            }
            var values = new float[keys.Length * table.Width];
            table.Gather(keys, executor.AsOf(watermark), values, transform: false);
            return (values, found, watermark);
        });
    }

    /// <summary>One entity's untransformed feature values as of the newest event applied, or null when the table does not hold it.</summary>
    public IReadOnlyDictionary<string, double>? Read(string entity)
    {
        ulong key = EntityKey.Hash(entity);
        var values = executor.Read((table, watermark) =>
        {
            if (table.Find(key) is null)
            {
                return null;
            }
            var row = new float[table.Width];
            table.Gather([key], executor.AsOf(watermark), row, transform: false);
            return row;
        });
        if (values is null)
        {
            return null;
        }
        var result = new Dictionary<string, double>(values.Length);
        for (int f = 0; f < values.Length; f++)
        {
            result[Plan.Definitions[f].Name] = values[f];
        }
        return result;
    }
}

/// <summary>A mini-batch's ids on their way through learning: ids in, then their table rows, embeddings and the loss's gradient for them.</summary>
internal sealed class LearnedIds(int batchSize, int idInputs, int embeddingWidth, int lastKeys = 0)
{
    /// <summary>Per row, the feature table's last keys (the LastOf inputs' ids as of the row's time).</summary>
    public ulong[] LastKeys { get; } = new ulong[batchSize * lastKeys];

    /// <summary>Per row, one hashed id per id input.</summary>
    public ulong[] Ids { get; } = new ulong[batchSize * idInputs];

    public int[] Rows { get; } = new int[batchSize * idInputs];

    public float[] Embeddings { get; } = new float[batchSize * embeddingWidth];

    public float[] Gradients { get; } = new float[batchSize * embeddingWidth];
}

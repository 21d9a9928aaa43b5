using Inference.Engine.Ingest;
using Inference.Kernels.Features;

namespace Inference.Engine.Features;

// The apply path run once before the first batch of a stream, on a table of its own.
internal sealed partial class DeviceExecutor
{
    /// <summary>
    /// Applies <paramref name="batch"/> <paramref name="rounds"/> times to a scratch table of this plan on this
    /// device, and journals it, on the executor's thread: every kernel and the journal are compiled before a
    /// backlog's first batch, and the live table and its watermark are untouched.
    /// </summary>
    public void Warm(MicroBatch batch, int rounds) =>
        OnDevice<object?>(() =>
        {
            int capacity = Math.Max(16, 2 * batch.Capacity);
            using var scratch = new FeatureTable(_device, _table.Plan, new FeatureTableOptions
            {
                InitialCapacity = capacity,
                MaxCapacity = capacity,
                MaxBatchEvents = batch.Capacity,
                MaxGatherRows = 1,
            });
            // Smaller than the batch, so that appending also forgets (the ring's wrap).
            var journal = new EventJournal(Math.Max(1, batch.Capacity / 2), _table.Plan.NumericFields.Count, _table.Plan.KeyFields.Count);
            for (int round = 0; round < rounds; round++)
            {
                scratch.Apply(batch.Columns);
                journal.Append(batch.Columns);
            }
            return null;
        });
}

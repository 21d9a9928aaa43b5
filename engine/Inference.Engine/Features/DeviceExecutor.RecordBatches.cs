using Apache.Arrow;
using Inference.Engine.Kafka;
using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>The device executor's apply of one Arrow record batch at a time, for callers that do not decode into micro-batches.</summary>
internal sealed partial class DeviceExecutor
{
    /// <summary>
    /// Applies one micro-batch (entity: uint64, ts: int64, a float column per numeric field, a uint64
    /// column per key field, in the plan's order), advances the watermark to <paramref name="offsets"/>
    /// and returns the events applied once the device is done. Blocks the calling thread.
    /// </summary>
    public int Apply(RecordBatch batch, ReadOnlySpan<PartitionOffset> offsets)
    {
        var work = new RecordBatchApply(batch);
        work.SetOffsets(offsets);
        Submit(work);
        return work.Wait();
    }

    /// <summary>An apply over an Arrow record batch, for callers that hand the executor one batch at a time.</summary>
    private sealed class RecordBatchApply(RecordBatch batch) : ApplyWork
    {
        protected internal override ApplyResult Apply(FeatureTable table) =>
            table.Apply(new RecordBatchColumns(batch, table.Plan.NumericFields.Count));

        protected internal override void Journal(EventJournal journal) =>
            journal.Append(new RecordBatchColumns(batch, journal.NumericColumns));
    }

    private readonly struct RecordBatchColumns(RecordBatch batch, int numeric) : IBatchColumns
    {
        public int Count => batch.Length;

        public ReadOnlySpan<ulong> Entities => ((UInt64Array)batch.Column(0)).Values;

        public ReadOnlySpan<long> Times => ((Int64Array)batch.Column(1)).Values;

        public ReadOnlySpan<float> Numeric(int column) => ((FloatArray)batch.Column(2 + column)).Values;

        public ReadOnlySpan<ulong> Keys(int column) => ((UInt64Array)batch.Column(2 + numeric + column)).Values;

        /// <summary>Arrow buffers of any origin: copied.</summary>
        public int PinnedStride => 0;
    }
}

using Inference.Engine.Ingest;
using Inference.Kernels.Features;

namespace Inference.Engine.Features;

/// <summary>
/// A micro-batch as the device executor applies it: its columns into the table, read in place from
/// page-locked memory, then its selected events handed to stream scoring with a read-only view of the
/// state they were applied to. One per micro-batch buffer, reused with it.
/// </summary>
internal sealed class MicroBatchApply(MicroBatch batch, IScoredBatchSink? scoring) : ApplyWork
{
    public MicroBatch Batch => batch;

    protected internal override ApplyResult Apply(FeatureTable table) => table.Apply(batch.Columns);

    protected internal override void Journal(EventJournal journal) => journal.Append(batch.Columns);

    protected internal override void AfterApply(FeatureTable table, Func<FeatureWatermark> watermark)
    {
        if (batch.Selected.Count > 0)
        {
            scoring?.Applied(batch, new FeatureView(table), watermark);
        }
    }
}

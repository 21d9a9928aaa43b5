using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Serving;
using Inference.Engine.Sync;
using Inference.Engine.Training;

namespace Inference.Engine.Hosting;

/// <summary>
/// The running totals of every stage's instruments in one place, for in-process readers (the demo's
/// progress line, tests, the pipeline bench). The instruments themselves belong to the stages.
/// </summary>
internal sealed class InferenceMetrics(IngestMetrics ingest, FeatureMetrics features, ServingMetrics serving, TrainingMetrics training, SyncMetrics sync)
{
    public IngestMetrics Ingest => ingest;

    public FeatureMetrics Features => features;

    public ServingMetrics Serving => serving;

    public TrainingMetrics Training => training;

    public SyncMetrics Sync => sync;

    public long EventsApplied => features.EventsApplied;

    public long BatchesApplied => features.BatchesApplied;

    public long DroppedEvents => features.DroppedEvents;

    public long LateEvents => features.LateEvents;

    public long EvictedEntities => features.EvictedEntities;

    public long MalformedEvents => ingest.MalformedEvents;

    public long DataLossResets => ingest.DataLossResets;

    public long ConsumerLag => ingest.ConsumerLag;

    public long RowsScored => serving.RowsScored;

    public long LabelsTrained => training.LabelsTrained;

    public long MalformedLabels => training.MalformedLabels;

    public double OnlineLogLoss => training.OnlineLogLoss;

    public long SyncRounds => sync.SyncRounds;
}

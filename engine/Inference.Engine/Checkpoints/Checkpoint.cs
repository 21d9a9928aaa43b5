using System.Security.Cryptography;
using System.Text;
using Inference.Engine.Features;
using Inference.Engine.Training;
using Inference.Kernels.Features;
using Inference.Models;

namespace Inference.Engine.Checkpoints;

/// <summary>
/// One consistent cut of the engine's state: every entity's feature state with the event offsets it
/// includes (taken on the device executor between two batches) and the trainer's state with the
/// label offsets it includes (taken on the trainer's thread between two mini-batches).
/// </summary>
internal sealed class Checkpoint
{
    // segmentPartitions: in a pool, the events topic's partition count: entities are written one file per partition.
    public Checkpoint(FeatureTableSnapshot table, FeatureWatermark events, TrainerCheckpoint? trainer, string modelFingerprint, int segmentPartitions = 0)
    {
        SegmentPartitions = segmentPartitions;
        Table = table;
        Events = events;
        Trainer = trainer;
        ModelFingerprint = modelFingerprint;
    }

    public FeatureTableSnapshot Table { get; }

    /// <summary>Over how many events partitions the entities are written one file each (0: one file).</summary>
    public int SegmentPartitions { get; }

    /// <summary>The event offsets (per partition, the last applied), newest event time and batches the table holds.</summary>
    public FeatureWatermark Events { get; }

    /// <summary>Null when the engine does not train.</summary>
    public TrainerCheckpoint? Trainer { get; }

    public string PlanFingerprint => Table.PlanFingerprint;

    public string ModelFingerprint { get; }

    /// <summary>A digest of the model's shape (kind, inputs, hidden units, id dimensions): weights and tables only load into the same shape.</summary>
    public static string Fingerprint(ModelSpec spec) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(spec.Ids.Count == 0
            ? $"{spec.Kind}/{spec.Inputs}/{spec.Hidden}"
            : $"{spec.Kind}/{spec.Inputs}/{spec.Hidden}/ids:{string.Join(',', spec.Ids)}")));
}

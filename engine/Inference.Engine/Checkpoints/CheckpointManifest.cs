using Inference.Engine.Kafka;

namespace Inference.Engine.Checkpoints;

/// <summary>
/// What a checkpoint holds, written last into its directory: the fingerprints it must match, a summary
/// of each part, and every other file with its size and SHA-256 (a checkpoint whose files do not
/// match is never restored).
/// </summary>
internal sealed record CheckpointManifest(
    int Format,
    long Sequence,
    DateTimeOffset CreatedUtc,
    string PlanFingerprint,
    string ModelFingerprint,
    CheckpointTableSummary Table,
    CheckpointEventSummary Events,
    CheckpointTrainerSummary? Trainer,
    IReadOnlyList<CheckpointFile> Files)
{
    // 2: entity keys carry Kafka's partitioner hash in their top bits (format 1's keys find nothing).
    public const int CurrentFormat = 2;
}

/// <summary>
/// The feature table's shape and counters. In a pool the entities are written in one file per events
/// partition (<see cref="Segments"/>, over <see cref="SegmentPartitions"/> partitions), so a worker taking
/// some partitions over reads and verifies only theirs; otherwise in one file.
/// </summary>
internal sealed record CheckpointTableSummary(int Capacity, int Entities, int Sequence, int PinMark, int LongsPerSlot, int DoublesPerSlot, int RegistersPerSlot,
    int SegmentPartitions = 0, IReadOnlyList<CheckpointSegment>? Segments = null);

/// <summary>The entities of one events partition and the file that holds them.</summary>
internal sealed record CheckpointSegment(int Partition, string File, int Entities);

/// <summary>The events the feature state includes.</summary>
internal sealed record CheckpointEventSummary(long MaxEventTimeMs, long BatchesApplied, IReadOnlyList<PartitionOffset> Offsets);

/// <summary>The labels the trainer's state includes (and, for a model over ids, how many embedding tables, one file each: <c>embeddings-NN.bin</c>).</summary>
internal sealed record CheckpointTrainerSummary(long LabelsLearned, long LabelsSkipped, long BaseVersion, IReadOnlyList<PartitionOffset> Offsets, int EmbeddingTables = 0);

/// <summary>One file of a checkpoint.</summary>
internal sealed record CheckpointFile(string Name, long Bytes, string Sha256);

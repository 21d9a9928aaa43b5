using Inference.Engine.Kafka;

namespace Inference.Engine.Ingest;

/// <summary>A consumer whose commits follow checkpoints (<see cref="KafkaBatchSource{TSink}"/>).</summary>
internal interface ICheckpointedSource
{
    string Topic { get; }

    long DeadLettersProduced { get; }

    long DeadLettersWritten { get; }

    void CommitCheckpointed(IReadOnlyList<PartitionOffset> offsets);
}

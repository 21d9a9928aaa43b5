namespace Inference.Engine.Kafka;

/// <summary>A position in one partition of a topic: the last offset read, applied or committed there.</summary>
internal readonly record struct PartitionOffset(string Topic, int Partition, long Offset);

using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Pool;

/// <summary>
/// Partition handoff in a pool (role Worker). Every worker checkpoints into its own directory under the
/// pool's (<c>Inference:Checkpoints:Directory</c>/<c>WORKER</c>). When a partition arrives, the newest
/// checkpoint of any worker that holds it is found; if it is newer than what this worker holds, the
/// partition's entities are taken from it (dropping any older ones here) and reading resumes right after
/// its offset; a partition no checkpoint holds is read from the start of the topic. When a partition
/// leaves, a checkpoint is taken first (so the next owner finds its state up to the last event applied
/// here), then its entities are dropped and the watermark forgets it. With the pool's directory on
/// storage every worker reads (ReadWriteMany), a moved partition resumes from the state its last owner
/// handed over; on storage only its writer reads, the new owner rebuilds it from the topic.
/// </summary>
internal sealed class PartitionHandoff(DeviceExecutor executor, CheckpointCoordinator coordinator, CheckpointWriter writer, KafkaConnection kafka,
    ILogger<PartitionHandoff> logger) : IPartitionHandoff
{
    private readonly string _topic = kafka.Options.EventsTopic;
    private int Partitions => kafka.PartitionCount(_topic) ?? throw new InvalidOperationException($"The partition count of topic '{_topic}' is not known.");

    public IReadOnlyDictionary<int, long> Arrive(IReadOnlyList<(int Partition, long Held)> arriving, IReadOnlyList<int> notOwned)
    {
        var held = arriving.ToDictionary(a => a.Partition, a => a.Held);
        if (notOwned.Count > 0)
        {
            executor.MovePartitions(_topic, Partitions, notOwned.ToHashSet(), null, new HashSet<int>(), []);
        }
        if (!coordinator.Enabled || coordinator.Options.PoolDirectory is not { } pool || !Directory.Exists(pool))
        {
            return held;
        }
        // The newest checkpoint holding each arriving partition, among every worker's.
        var best = new Dictionary<int, (long Offset, string Path)>();
        foreach (string worker in Directory.GetDirectories(pool))
        {
            foreach (var entry in CheckpointFiles.List(worker))
            {
                foreach (var offset in entry.Manifest?.Events.Offsets ?? [])
                {
                    if (offset.Topic == _topic && held.ContainsKey(offset.Partition) && (!best.TryGetValue(offset.Partition, out var current) || offset.Offset > current.Offset))
                    {
                        best[offset.Partition] = (offset.Offset, entry.Path);
                    }
                }
            }
        }
        foreach (var source in best.Where(b => b.Value.Offset > held[b.Key]).GroupBy(b => b.Value.Path))
        {
            var partitions = source.Select(b => b.Key).ToHashSet();
            try
            {
                // Only these partitions' files where the checkpoint is segmented; else the whole of it.
                var checkpoint = CheckpointFiles.ReadPartitions(source.Key, partitions, Partitions) ?? CheckpointFiles.Read(source.Key);
                var offsets = checkpoint.Events.Partitions.Where(p => p.Topic == _topic && partitions.Contains(p.Partition)).ToList();
                executor.MovePartitions(_topic, Partitions, new HashSet<int>(), checkpoint.Table, partitions, offsets);
                foreach (var offset in offsets)
                {
                    held[offset.Partition] = offset.Offset;
                }
                CheckpointLog.HandedOver(logger, string.Join(", ", partitions.Order()), source.Key, checkpoint.Table.CountIn(partitions, Partitions));
            }
            catch (Exception error) when (error is InvalidDataException or IOException or InvalidOperationException)
            {
                // Damaged or of other declarations: these partitions are rebuilt from the topic instead.
                CheckpointLog.HandoverFailed(logger, source.Key, error.Message);
            }
        }
        return held;
    }

    public void Leave(IReadOnlyList<int> partitions)
    {
        if (coordinator.Enabled && coordinator.IsRestored)
        {
            // The Kafka rebalance callback is synchronous: the partition is released only once its state is
            // written. The checkpoint is taken on the thread pool; the consumer's thread waits on an event.
            BlockingResult.RunOnPool(() => writer.TakeAsync(Timeout.Infinite, CancellationToken.None));
        }
        executor.MovePartitions(_topic, Partitions, partitions.ToHashSet(), null, new HashSet<int>(), []);
    }
}

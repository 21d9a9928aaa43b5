using Confluent.Kafka;
using Inference.Engine.Kafka;

namespace Inference.Engine.Ingest;

/// <summary>The batch source's commits: offsets stored once their batch is applied, checkpointed offsets handed over, and the lag behind the partitions' ends.</summary>
internal sealed unsafe partial class KafkaBatchSource<TSink>
    where TSink : class, IBatchSink
{
    /// <summary>Stores, for commit, the offset after the last one of each partition in the submitted batch.</summary>
    private void StoreSubmitted(int deadLetterWaitMs = Timeout.Infinite)
    {
        if (_submitted.Count == 0)
        {
            return;
        }
        if (!DeadLettersDurable(deadLetterWaitMs))
        {
            // Shutting down with dead letters unwritten: store nothing, so these events are read again.
            IngestLog.DeadLettersUnwritten(_logger, _settings.DeadLetterTopic);
            _submitted.Clear();
            return;
        }
        if (_settings.CommitsFollowCheckpoints)
        {
            // The batch is applied; its offsets are committed once a durable checkpoint holds them.
            _submitted.Clear();
            return;
        }
        var list = RdKafkaNative.rd_kafka_topic_partition_list_new(_submitted.Count);
        try
        {
            foreach (int partition in _submitted.Partitions)
            {
                var element = (RdKafkaNative.TopicPartition*)RdKafkaNative.rd_kafka_topic_partition_list_add(list, _settings.Topic, partition);
                element->Offset = _submitted.Last(partition) + 1;
            }
            // Partitions revoked meanwhile are refused (their new owner reads them again): not an error here.
            _ = RdKafkaNative.rd_kafka_offsets_store(_rk, list);
        }
        finally
        {
            RdKafkaNative.rd_kafka_topic_partition_list_destroy(list);
        }
        _submitted.Clear();
    }

    /// <summary>Commits the newest checkpointed offsets handed over (the checkpoint waited for their dead letters), for the partitions still assigned.</summary>
    private void CommitPendingCheckpoint()
    {
        var offsets = Interlocked.Exchange(ref _checkpointCommit, null);
        if (offsets is null)
        {
            return;
        }
        var assigned = _consumer.Assignment;
        var commit = new List<TopicPartitionOffset>(offsets.Count);
        foreach (var offset in offsets)
        {
            if (offset.Topic == _settings.Topic && assigned.Exists(p => p.Partition.Value == offset.Partition))
            {
                commit.Add(new TopicPartitionOffset(offset.Topic, offset.Partition, offset.Offset + 1));
            }
        }
        if (commit.Count == 0)
        {
            return;
        }
        try
        {
            _consumer.Commit(commit);
        }
        catch (KafkaException error)
        {
            // The next checkpoint commits again; until then lag reads a little high.
            IngestLog.KafkaError(_logger, error.Error.Reason);
        }
    }

    /// <summary>
    /// Events behind the end of the assigned partitions, from librdkafka's cached high watermarks and
    /// positions (no broker round trip, no managed allocation).
    /// </summary>
    private long MeasureLag()
    {
        if (RdKafkaNative.rd_kafka_assignment(_rk, out var list) != 0 || list == IntPtr.Zero)
        {
            return 0;
        }
        long lag = 0;
        try
        {
            RdKafkaNative.rd_kafka_position(_rk, list);
            var partitions = (RdKafkaNative.TopicPartitionList*)list;
            for (int i = 0; i < partitions->Count; i++)
            {
                var element = (RdKafkaNative.TopicPartition*)((byte*)partitions->Elements + i * RdKafkaNative.TopicPartitionSize);
                if (RdKafkaNative.rd_kafka_get_watermark_offsets(_rk, element->Topic, element->Partition, out _, out long high) == 0
                    && high >= 0 && element->Offset >= 0)
                {
                    long behind = Math.Max(0, high - element->Offset);
                    lag += behind;
                    _settings.PartitionLag?.Invoke(element->Partition, behind);
                }
            }
        }
        finally
        {
            RdKafkaNative.rd_kafka_topic_partition_list_destroy(list);
        }
        return lag;
    }
}

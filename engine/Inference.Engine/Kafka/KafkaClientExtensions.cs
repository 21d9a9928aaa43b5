using Confluent.Kafka;

namespace Inference.Engine.Kafka;

/// <summary>What the engine's consume loops and the stream producers (demo, bench) do the same way.</summary>
internal static class KafkaClientExtensions
{
    // Not a timeout: how long a producer with a full local queue serves delivery reports before it tries again.
    private const int QueueFullPollMs = 10;

    /// <summary>Commits the stored offsets now; having none stored is not an error.</summary>
    internal static void CommitStored<TKey, TValue>(this IConsumer<TKey, TValue> consumer)
    {
        try
        {
            consumer.Commit();
        }
        catch (KafkaException error) when (error.Error.Code == ErrorCode.Local_NoOffset)
        {
        }
    }

    /// <summary>Stores, for commit, the offset after the last one consumed per partition, then forgets them.</summary>
    internal static void StoreConsumed<TKey, TValue>(this IConsumer<TKey, TValue> consumer, Dictionary<TopicPartition, long> lastConsumed)
    {
        foreach (var (partition, offset) in lastConsumed)
        {
            consumer.StoreOffset(new TopicPartitionOffset(partition, new Offset(offset + 1)));
        }
        lastConsumed.Clear();
    }

    /// <summary>Produces, waiting while the local queue is full instead of failing.</summary>
    public static void ProduceWaiting<TKey, TValue>(this IProducer<TKey, TValue> producer, string topic, Message<TKey, TValue> message)
    {
        while (true)
        {
            try
            {
                producer.Produce(topic, message);
                return;
            }
            catch (ProduceException<TKey, TValue> error) when (error.Error.Code == ErrorCode.Local_QueueFull)
            {
                producer.Poll(TimeSpan.FromMilliseconds(QueueFullPollMs));
            }
        }
    }
}

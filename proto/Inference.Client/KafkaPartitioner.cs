using System.Text;
using Inference.Hashing;

namespace Inference.Client;

/// <summary>
/// Kafka's default partitioner for keyed records: the Java client's murmur2 of the key's bytes, made
/// positive, modulo the partition count (librdkafka's <c>murmur2_random</c> for non-null keys is the same).
/// Producers must partition events this way for Score routing to find an entity's owner.
/// </summary>
public static class KafkaPartitioner
{
    public static int PartitionOf(string key, int partitions)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        int length = Encoding.UTF8.GetByteCount(key);
        Span<byte> bytes = length <= 256 ? stackalloc byte[length] : new byte[length];
        Encoding.UTF8.GetBytes(key, bytes);
        return (int)((Murmur2.Hash(bytes) & 0x7fffffff) % (uint)partitions);
    }
}

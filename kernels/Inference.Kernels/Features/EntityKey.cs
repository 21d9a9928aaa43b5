using System.IO.Hashing;
using System.Text;
using Inference.Hashing;

namespace Inference.Kernels.Features;

/// <summary>
/// Entity keys (and key fields such as a merchant id) are hashed to 64 bits over the key's UTF-8 bytes;
/// the feature table is keyed by that hash. The top 31 bits are Kafka's partitioner hash of the key
/// (murmur2, made positive), so every entity in the table knows its events partition
/// (<see cref="PartitionOf"/>: what a pool worker drops when a partition leaves it and takes from a
/// checkpoint when one arrives); the low 33 bits are XXH3-64's (seed 0). Collisions between hash buckets
/// of the table are resolved by linear probing. Two distinct keys with the same 64-bit key would share
/// one entity: the chance that any pair among n keys does is about n²/2^65 (3·10^-8 for a million
/// keys, 3·10^-4 for a hundred million).
/// </summary>
public static class EntityKey
{
    private const int PartitionShift = 33;
    private const ulong LowMask = (1UL << PartitionShift) - 1;

    public static ulong Hash(ReadOnlySpan<byte> utf8Key) =>
        ((ulong)(Murmur2.Hash(utf8Key) & 0x7fffffff) << PartitionShift) | (XxHash3.HashToUInt64(utf8Key) & LowMask);

    public static ulong Hash(string key)
    {
        Span<byte> buffer = key.Length <= 256 ? stackalloc byte[Encoding.UTF8.GetMaxByteCount(key.Length)] : new byte[Encoding.UTF8.GetMaxByteCount(key.Length)];
        int written = Encoding.UTF8.GetBytes(key, buffer);
        return Hash(buffer[..written]);
    }

    /// <summary>The events partition of the entity with <paramref name="key"/> among <paramref name="partitions"/>: Kafka's default partitioner of its key.</summary>
    public static int PartitionOf(ulong key, int partitions) => (int)((key >> PartitionShift) % (uint)partitions);
}

using System.IO.Hashing;
using System.Text;

namespace Inference.Kernels.Features;

/// <summary>
/// Entity keys (and key fields such as a merchant id) are hashed to 64 bits with XXH3-64 (seed 0)
/// over the key's UTF-8 bytes; the feature table is keyed by that hash. Collisions between hash
/// buckets of the table are resolved by linear probing. Two distinct keys with the same 64-bit hash
/// would share one entity: the chance that any pair among n keys does is about n²/2^65 (3·10^-8 for
/// a million keys, 3·10^-4 for a hundred million).
/// </summary>
public static class EntityKey
{
    public static ulong Hash(ReadOnlySpan<byte> utf8Key) => XxHash3.HashToUInt64(utf8Key);

    public static ulong Hash(string key)
    {
        Span<byte> buffer = key.Length <= 256 ? stackalloc byte[Encoding.UTF8.GetMaxByteCount(key.Length)] : new byte[Encoding.UTF8.GetMaxByteCount(key.Length)];
        int written = Encoding.UTF8.GetBytes(key, buffer);
        return Hash(buffer[..written]);
    }
}

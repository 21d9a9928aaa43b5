using System.IO.Hashing;
using System.Text;

namespace Inference.Kernels.State;

/// <summary>
/// Entity keys are hashed to 64 bits with XXH3-64 (seed 0) over the key's UTF-8 bytes. The state
/// table is keyed by the hash; two keys with the same hash share a slot (about one pair in 10^8 among
/// 10^6 entities), which the entity→slot map does not yet detect.
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

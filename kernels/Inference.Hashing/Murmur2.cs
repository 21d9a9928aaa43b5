namespace Inference.Hashing;

/// <summary>
/// Kafka's murmur2 (seed 0x9747b28c), the hash of its default partitioner for keyed records. Compiled
/// once, here: the kernels (entity keys carry it) and the client library (clients route by it) reference it.
/// </summary>
public static class Murmur2
{
    public static uint Hash(ReadOnlySpan<byte> data)
    {
        const uint M = 0x5bd1e995;
        const int R = 24;
        int length = data.Length;
        uint h = 0x9747b28c ^ (uint)length;
        int blocks = length / 4;
        for (int i = 0; i < blocks; i++)
        {
            int at = i * 4;
            uint k = data[at] | ((uint)data[at + 1] << 8) | ((uint)data[at + 2] << 16) | ((uint)data[at + 3] << 24);
            k *= M;
            k ^= k >> R;
            k *= M;
            h *= M;
            h ^= k;
        }
        int tail = blocks * 4;
        switch (length % 4)
        {
            case 3:
                h ^= (uint)data[tail + 2] << 16;
                goto case 2;
            case 2:
                h ^= (uint)data[tail + 1] << 8;
                goto case 1;
            case 1:
                h ^= data[tail];
                h *= M;
                break;
        }
        h ^= h >> 13;
        h *= M;
        h ^= h >> 15;
        return h;
    }
}

namespace Inference.Engine.Pipeline;

/// <summary>Reused work buffers.</summary>
internal static class WorkBuffers
{
    /// <summary>Makes <paramref name="buffer"/> hold at least <paramref name="length"/> elements: doubled (or to the length) when short; contents are not kept.</summary>
    public static void Grow<T>(ref T[] buffer, int length)
    {
        if (buffer.Length < length)
        {
            buffer = new T[Math.Max(length, 2 * buffer.Length)];
        }
    }
}

using System.Buffers;
using System.Runtime.InteropServices;

namespace Inference.Engine.Ingest;

/// <summary>
/// A block of 64-byte aligned native memory locked into RAM (<c>mlock</c>), so the OS never pages
/// it out and a device copy can read it without staging. Where the lock is refused (RLIMIT_MEMLOCK),
/// the memory is still usable and <see cref="IsLocked"/> says so.
/// </summary>
internal sealed unsafe partial class PinnedMemory : MemoryManager<byte>
{
    private void* _pointer;

    public PinnedMemory(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(length);
        Length = length;
        _pointer = NativeMemory.AlignedAlloc((nuint)length, 64);
        NativeMemory.Clear(_pointer, (nuint)length);
        IsLocked = OperatingSystem.IsLinux() && mlock(_pointer, (nuint)length) == 0;
    }

    public int Length { get; }

    public IntPtr Address => (IntPtr)_pointer;

    public bool IsLocked { get; }

    public override Span<byte> GetSpan() => new(_pointer, Length);

    public Span<T> AsSpan<T>(int count)
        where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count * sizeof(T), Length);
        return new Span<T>(_pointer, count);
    }

    public override MemoryHandle Pin(int elementIndex = 0) => new((byte*)_pointer + elementIndex);

    public override void Unpin()
    {
    }

    protected override void Dispose(bool disposing)
    {
        if (_pointer != null)
        {
            if (IsLocked)
            {
                _ = munlock(_pointer, (nuint)Length);
            }
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int mlock(void* address, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int munlock(void* address, nuint length);
}

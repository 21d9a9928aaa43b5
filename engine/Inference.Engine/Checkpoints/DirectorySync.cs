using System.Runtime.InteropServices;

namespace Inference.Engine.Checkpoints;

/// <summary>Durability of a directory's entries: the step after fsyncing a file that makes its rename or creation last.</summary>
internal static partial class DirectorySync
{
    /// <summary>fsync on a directory, so a rename into it or a file created in it survives a power loss (Linux; elsewhere a no-op).</summary>
    internal static void Sync(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        const int ReadOnlyDirectory = 0x10000; // O_RDONLY | O_DIRECTORY
        int fd = Open(path, ReadOnlyDirectory);
        if (fd < 0)
        {
            throw new IOException($"Cannot open directory {path} to sync it (errno {Marshal.GetLastPInvokeError()}).");
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"Cannot sync directory {path} (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}

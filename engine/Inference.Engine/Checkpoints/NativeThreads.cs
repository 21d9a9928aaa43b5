using System.Runtime.InteropServices;

namespace Inference.Engine.Checkpoints;

/// <summary>libc's per-thread priority (Linux): the checkpoint writer runs below ingest and serving.</summary>
internal static partial class NativeThreads
{
    /// <summary>setpriority(PRIO_PROCESS, tid, nice): on Linux a thread id names just that thread.</summary>
    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    public static partial int SetPriority(int which, int who, int niceness);

    [LibraryImport("libc", EntryPoint = "gettid")]
    public static partial int CurrentThreadId();
}

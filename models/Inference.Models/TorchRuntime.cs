using System.Globalization;
using System.Runtime.InteropServices;
using TorchSharp;

namespace Inference.Models;

/// <summary>Loads libtorch once per process and sets its thread use.</summary>
public static class TorchRuntime
{
    private static readonly Lock Gate = new();
    private static bool _loaded;

    /// <summary>
    /// Scoring batches are small: intra-op threads would cost more in hand-offs than they save, and
    /// gRPC already scores requests concurrently. One thread per op unless told otherwise.
    /// </summary>
    public const int DefaultIntraOpThreads = 1;

    public static void EnsureLoaded(int intraOpThreads = DefaultIntraOpThreads)
    {
        lock (Gate)
        {
            if (_loaded)
            {
                return;
            }
            LimitOpenMp(intraOpThreads);
            torch.InitializeDeviceType(DeviceType.CPU);
            torch.set_num_threads(intraOpThreads);
            _loaded = true;
        }
    }

    /// <summary>
    /// libtorch's OpenMP runtime sizes its thread team from OMP_NUM_THREADS when it loads, for every
    /// thread that later calls into it (set_num_threads covers only the calling thread). Unset, that is
    /// one thread per core, and its idle workers spin after each parallel region: on a small machine
    /// they take the cores serving needs. So, unless the operator set it, it is set to the intra-op
    /// thread count in the native environment (the runtime's own copy does not reach native code)
    /// before libtorch loads.
    /// </summary>
    private static void LimitOpenMp(int threads)
    {
        if (!OperatingSystem.IsWindows() && Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is null)
        {
            _ = SetEnvironment("OMP_NUM_THREADS", threads.ToString(CultureInfo.InvariantCulture), overwrite: 0);
        }
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnvironment([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    /// <summary>The libtorch build in use, for logs.</summary>
    public static string Description
    {
        get
        {
            EnsureLoaded();
            return $"TorchSharp on {(torch.cuda.is_available() ? "CUDA" : "CPU")}";
        }
    }
}

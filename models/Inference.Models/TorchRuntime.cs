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
            torch.InitializeDeviceType(DeviceType.CPU);
            torch.set_num_threads(intraOpThreads);
            _loaded = true;
        }
    }

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

using System.Reflection;
using System.Runtime.InteropServices;
using Confluent.Kafka;

namespace Inference.Engine.Kafka;

/// <summary>
/// The few librdkafka entry points Confluent.Kafka does not expose (the mock cluster, batch consume),
/// bound to the very library file Confluent.Kafka loaded so both share one copy of librdkafka.
/// </summary>
internal static unsafe partial class RdKafkaNative
{
    private const string LibraryName = "inference-librdkafka";

    static RdKafkaNative()
    {
        NativeLibrary.SetDllImportResolver(typeof(RdKafkaNative).Assembly, Resolve);
    }

    /// <summary>Makes sure Confluent.Kafka has loaded librdkafka and our resolver is in place.</summary>
    public static void EnsureLoaded()
    {
        Library.Load();
        _ = rd_kafka_version();
    }

    private static IntPtr _handle;

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != LibraryName)
        {
            return IntPtr.Zero;
        }
        if (_handle != IntPtr.Zero)
        {
            return _handle;
        }
        // Confluent.Kafka tries the default build first and falls back to the centos8 build where
        // the system lacks libsasl2.so.3 (Debian 12). Trying the same files in the same order lands
        // on the file it already loaded, so dlopen hands back the same handle.
        string native = Path.Combine(AppContext.BaseDirectory, "runtimes", RuntimeInformation.RuntimeIdentifier.StartsWith("linux-musl", StringComparison.Ordinal) ? "linux-musl-x64" : "linux-x64", "native");
        string[] candidates =
        [
            Path.Combine(native, "librdkafka.so"),
            Path.Combine(native, "centos8-librdkafka.so"),
            Path.Combine(AppContext.BaseDirectory, "librdkafka.so"),
            Path.Combine(AppContext.BaseDirectory, "centos8-librdkafka.so"),
            "librdkafka.so.1",
        ];
        foreach (var candidate in candidates)
        {
            if (NativeLibrary.TryLoad(candidate, out var handle))
            {
                _handle = handle;
                return handle;
            }
        }
        throw new DllNotFoundException($"librdkafka could not be loaded from {native}.");
    }

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_version();

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_conf_new();

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rd_kafka_conf_set(IntPtr conf, string name, string value, byte* errstr, nuint errstrSize);

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_new(int type, IntPtr conf, byte* errstr, nuint errstrSize);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_destroy(IntPtr rk);

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_mock_cluster_new(IntPtr rk, int brokerCount);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_mock_cluster_destroy(IntPtr cluster);

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr cluster);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rd_kafka_mock_topic_create(IntPtr cluster, string topic, int partitionCount, int replicationFactor);

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_err2str(int error);

    public static string ErrorText(int error) => Marshal.PtrToStringUTF8(rd_kafka_err2str(error)) ?? $"error {error}";
}

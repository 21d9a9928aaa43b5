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
    private static IntPtr _handle;

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

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    public static partial void rd_kafka_mock_topic_set_error(IntPtr cluster, string topic, int error);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_mock_broker_set_down(IntPtr cluster, int brokerId);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_mock_broker_set_up(IntPtr cluster, int brokerId);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_header_get_all(IntPtr headers, nuint index, out IntPtr name, out IntPtr value, out nuint size);

    [LibraryImport(LibraryName)]
    public static partial long rd_kafka_message_timestamp(IntPtr message, out int type);

    // Batch consume: a consumer's queue drained many messages per call, payloads read in place.

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_poll_set_consumer(IntPtr rk);

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_topic_partition_list_new(int size);

    [LibraryImport(LibraryName, StringMarshalling = StringMarshalling.Utf8)]
    public static partial IntPtr rd_kafka_topic_partition_list_add(IntPtr list, string topic, int partition);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_topic_partition_list_destroy(IntPtr list);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_subscribe(IntPtr rk, IntPtr topics);

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_queue_get_consumer(IntPtr rk);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_queue_destroy(IntPtr queue);

    [LibraryImport(LibraryName)]
    public static partial nint rd_kafka_consume_batch_queue(IntPtr queue, int timeoutMs, IntPtr* messages, nuint size);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_message_destroy(IntPtr message);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_consumer_close(IntPtr rk);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_offsets_store(IntPtr rk, IntPtr offsets);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_message_headers(IntPtr message, out IntPtr headers);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_header_get_last(IntPtr headers, byte* name, out IntPtr value, out nuint size);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_assignment(IntPtr rk, out IntPtr partitions);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_position(IntPtr rk, IntPtr partitions);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_get_watermark_offsets(IntPtr rk, IntPtr topic, int partition, out long low, out long high);

    // Produce from native memory (stream scoring): one call per record, copied by librdkafka, no managed
    // Message, key or header objects per record.

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_produceva(IntPtr rk, VarUnion* values, nuint count);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_error_code(IntPtr error);

    [LibraryImport(LibraryName)]
    public static partial IntPtr rd_kafka_error_string(IntPtr error);

    [LibraryImport(LibraryName)]
    public static partial void rd_kafka_error_destroy(IntPtr error);

    [LibraryImport(LibraryName)]
    public static partial int rd_kafka_poll(IntPtr rk, int timeoutMs);

    /// <summary>rd_kafka_vtype_t: what one <see cref="VarUnion"/> of a produceva call carries.</summary>
    public enum VarType
    {
        End = 0,
        Topic = 1,
        Partition = 3,
        Value = 4,
        Key = 5,
        MessageFlags = 7,
        Header = 9,
    }

    /// <summary>RD_KAFKA_MSG_F_COPY: librdkafka copies key and value before produceva returns.</summary>
    public const int MessageCopy = 0x2;

    /// <summary>RD_KAFKA_RESP_ERR__QUEUE_FULL: the producer's local queue is full (Kafka is not keeping up).</summary>
    public const int QueueFull = -184;

    /// <summary>rd_kafka_vu_t on 64-bit platforms: the type, then a 64-byte union.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 72)]
    public struct VarUnion
    {
        [FieldOffset(0)]
        public VarType Type;

        /// <summary>cstr (topic), mem.ptr (key, value) or header.name.</summary>
        [FieldOffset(8)]
        public IntPtr Pointer;

        /// <summary>i / i32 (partition, flags), mem.size or header.val.</summary>
        [FieldOffset(16)]
        public IntPtr Second;

        /// <summary>header.size.</summary>
        [FieldOffset(24)]
        public nint Third;

        [FieldOffset(8)]
        public int Int32;
    }

    /// <summary>rd_kafka_topic_partition_list_t.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct TopicPartitionList
    {
        public int Count;
        public int Size;
        public IntPtr Elements;
    }

    /// <summary>sizeof(rd_kafka_topic_partition_t) on 64-bit platforms.</summary>
    public const int TopicPartitionSize = 64;

    /// <summary>RD_KAFKA_RESP_ERR__PARTITION_EOF: the end of a partition, not an error.</summary>
    public const int PartitionEof = -191;

    /// <summary>
    /// The librdkafka handle (rd_kafka_t) under a Confluent.Kafka client, so batch consume can run on
    /// the queue of a consumer whose group membership, rebalance callbacks and commits stay with
    /// Confluent.Kafka. The handle is internal to Confluent.Kafka; it is read once per consumer.
    /// </summary>
    public static IntPtr HandleOf(IClient client)
    {
        var property = typeof(Handle).GetProperty("LibrdkafkaHandle", BindingFlags.Instance | BindingFlags.NonPublic)
            ?? throw new InvalidOperationException("This Confluent.Kafka version does not expose its librdkafka handle where expected.");
        var handle = (SafeHandle)property.GetValue(client.Handle)!;
        return handle.DangerousGetHandle();
    }

    /// <summary>rd_kafka_topic_partition_t: the fields before the offset.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct TopicPartition
    {
        public IntPtr Topic;
        public int Partition;
        public long Offset;
    }

    /// <summary>librdkafka's rd_kafka_message_t (the public part of its layout).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Message
    {
        public int Error;
        public IntPtr Topic;
        public int Partition;
        public IntPtr Payload;
        public nuint Length;
        public IntPtr Key;
        public nuint KeyLength;
        public long Offset;
        public IntPtr Private;
    }

    public static string ErrorText(int error) => Marshal.PtrToStringUTF8(rd_kafka_err2str(error)) ?? $"error {error}";
}

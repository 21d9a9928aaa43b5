using System.Text;
using Confluent.Kafka;

namespace Inference.Engine.Kafka;

/// <summary>
/// Produces records from spans through the librdkafka handle of a Confluent.Kafka producer (which keeps
/// the transactions): key, value and headers are copied by librdkafka, so nothing managed is allocated
/// per record. The producer must be built with delivery reports off (its records carry no handler).
/// </summary>
internal sealed unsafe class RecordProducer
{
    // Not a timeout: how long a record waits in librdkafka's poll for room in a full queue before it is queued again.
    private const int QueueFullPollMs = 1;

    private readonly IProducer<Null, Null> _producer;
    private readonly IntPtr _rk;
    private readonly Dictionary<string, byte[]> _topics = new(StringComparer.Ordinal);

    public RecordProducer(IProducer<Null, Null> producer)
    {
        _producer = producer;
        _rk = RdKafkaNative.HandleOf(producer);
    }

    /// <summary>Called each time the local queue is full and a record waits (Kafka does not keep up).</summary>
    public Action? QueueFull { get; init; }

    /// <summary>One header: a NUL-terminated UTF-8 name and its value.</summary>
    public readonly ref struct Header(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        public ReadOnlySpan<byte> Name { get; } = name;

        public ReadOnlySpan<byte> Value { get; } = value;
    }

    /// <summary>Queues one record (partition by the producer's partitioner unless given); throws a <see cref="KafkaException"/> on failure.</summary>
    public void Produce(string topic, ReadOnlySpan<byte> key, ReadOnlySpan<byte> value, Header first, Header second, Header third, Header fourth, int partition = -1)
    {
        if (!_topics.TryGetValue(topic, out var name))
        {
            name = Encoding.UTF8.GetBytes(topic + "\0");
            _topics[topic] = name;
        }
        const int Count = 9;
        var values = stackalloc RdKafkaNative.VarUnion[Count];
        fixed (byte* topicName = name, k = key, v = value)
        fixed (byte* n1 = first.Name, v1 = first.Value, n2 = second.Name, v2 = second.Value, n3 = third.Name, v3 = third.Value, n4 = fourth.Name, v4 = fourth.Value)
        {
            values[0] = new RdKafkaNative.VarUnion { Type = RdKafkaNative.VarType.Topic, Pointer = (IntPtr)topicName };
            values[1] = new RdKafkaNative.VarUnion { Type = RdKafkaNative.VarType.Partition, Int32 = partition };
            values[2] = new RdKafkaNative.VarUnion { Type = RdKafkaNative.VarType.MessageFlags, Int32 = RdKafkaNative.MessageCopy };
            values[3] = new RdKafkaNative.VarUnion { Type = RdKafkaNative.VarType.Key, Pointer = (IntPtr)k, Second = key.Length };
            values[4] = new RdKafkaNative.VarUnion { Type = RdKafkaNative.VarType.Value, Pointer = (IntPtr)v, Second = value.Length };
            int count = 5;
            count = AddHeader(values, count, n1, v1, first.Value.Length);
            count = AddHeader(values, count, n2, v2, second.Value.Length);
            count = AddHeader(values, count, n3, v3, third.Value.Length);
            count = AddHeader(values, count, n4, v4, fourth.Value.Length);
            while (true)
            {
                var error = RdKafkaNative.rd_kafka_produceva(_rk, values, (nuint)count);
                if (error == IntPtr.Zero)
                {
                    return;
                }
                int code = RdKafkaNative.rd_kafka_error_code(error);
                string text = System.Runtime.InteropServices.Marshal.PtrToStringUTF8(RdKafkaNative.rd_kafka_error_string(error)) ?? RdKafkaNative.ErrorText(code);
                RdKafkaNative.rd_kafka_error_destroy(error);
                if (code != RdKafkaNative.QueueFull)
                {
                    throw new KafkaException(new Error((ErrorCode)code, text));
                }
                // The queue drains as the broker acknowledges: wait for room (backpressure, counted).
                QueueFull?.Invoke();
                _producer.Poll(TimeSpan.FromMilliseconds(QueueFullPollMs));
            }
        }
    }

    private static int AddHeader(RdKafkaNative.VarUnion* values, int count, byte* name, byte* value, int length)
    {
        if (name == null)
        {
            return count;
        }
        values[count] = new RdKafkaNative.VarUnion { Type = RdKafkaNative.VarType.Header, Pointer = (IntPtr)name, Second = (IntPtr)value, Third = length };
        return count + 1;
    }
}

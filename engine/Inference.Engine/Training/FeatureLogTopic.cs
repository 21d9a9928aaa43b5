using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using Inference.Engine.Kafka;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Training;

/// <summary>
/// The feature log on a Kafka topic (<c>Inference:Training:FeatureLogTopic</c>), so that it survives a restart: every
/// row the log takes is also produced there, compact binary (key: the request id's 64-bit hash, big-endian; value:
/// served time and version as int64, score as float32, the model inputs as float32 and the ids as uint64, all
/// little-endian); when the trainer starts, the topic is read back into the log, rows older than
/// <c>MaxLabelDelayMs</c> skipped (the topic's retention should be about that long). A row the producer's queue cannot take is counted and kept in memory only.
/// </summary>
internal sealed class FeatureLogTopic : IDisposable
{
    private const int HeaderBytes = 8 + 8 + 4;
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(30);

    private readonly KafkaConnection _kafka;
    private readonly FeatureLog _log;
    private readonly string _topic;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TrainingMetrics _metrics;
    private IProducer<byte[], byte[]>? _producer;

    public FeatureLogTopic(KafkaConnection kafka, FeatureLog log, string topic, TrainingMetrics metrics, TimeProvider time, ILogger logger)
    {
        _kafka = kafka;
        _log = log;
        _topic = topic;
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    public string Topic => _topic;

    /// <summary>
    /// Reads back the rows served within <c>MaxLabelDelayMs</c> (from every partition, to its end now), then
    /// writes every row the log takes from now on. Returns the rows read back.
    /// </summary>
    public int Start()
    {
        _kafka.EnsureEmbeddedTopic(_topic);
        int restored = ReadBack();
        _producer = new ProducerBuilder<byte[], byte[]>(_kafka.ProducerConfig()).Build();
        _log.Persist = Write;
        TrainingLog.FeatureLogRestored(_logger, restored, _topic);
        return restored;
    }

    private int ReadBack()
    {
        var config = _kafka.ConsumerConfig($"{_kafka.Options.GroupId}.features-log");
        config.EnableAutoCommit = false;
        using var consumer = new ConsumerBuilder<byte[], byte[]>(config).Build();
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var metadata = admin.GetMetadata(_topic, ReadTimeout);
        var partitions = metadata.Topics.SelectMany(t => t.Partitions).Select(p => new TopicPartition(_topic, p.PartitionId)).ToList();
        if (partitions.Count == 0)
        {
            return 0;
        }
        // From each partition's start (the topic's retention bounds it; set it to MaxLabelDelayMs): rows older than
        // the label delay are skipped as they are read.
        var bounds = partitions.ToDictionary(p => p.Partition.Value, p => consumer.QueryWatermarkOffsets(p, ReadTimeout));
        var ends = bounds.ToDictionary(b => b.Key, b => b.Value.High.Value);
        var assigned = partitions.Where(p => bounds[p.Partition.Value].Low.Value < ends[p.Partition.Value])
            .Select(p => new TopicPartitionOffset(p, bounds[p.Partition.Value].Low)).ToList();
        if (assigned.Count == 0)
        {
            return 0;
        }
        consumer.Assign(assigned);
        var open = assigned.Select(a => a.Partition.Value).ToHashSet();
        int restored = 0;
        long deadline = _time.GetTimestamp();
        while (open.Count > 0)
        {
            var record = consumer.Consume(TimeSpan.FromMilliseconds(200));
            if (record is null)
            {
                if (_time.GetElapsedTime(deadline) > ReadTimeout)
                {
                    throw new KafkaException(new Error(ErrorCode.Local_TimedOut, $"Reading the feature log back from {_topic} took over {ReadTimeout.TotalSeconds:0} s."));
                }
                continue;
            }
            deadline = _time.GetTimestamp();
            if (record.IsPartitionEOF)
            {
                open.Remove(record.Partition.Value);
                continue;
            }
            restored += Read(record.Message.Key, record.Message.Value) ? 1 : 0;
            if (record.Offset.Value + 1 >= ends[record.Partition.Value])
            {
                open.Remove(record.Partition.Value);
            }
        }
        return restored;
    }

    /// <summary>One record back into the log; false for a record of another model's shape or one too old.</summary>
    private bool Read(byte[]? key, byte[]? value)
    {
        int width = _log.Width, ids = _log.IdInputs;
        if (key is not { Length: 8 } || value is null || value.Length != HeaderBytes + 4 * width + 8 * ids)
        {
            _metrics.FeatureLogSkipped();
            return false;
        }
        long servedMs = BinaryPrimitives.ReadInt64LittleEndian(value);
        long version = BinaryPrimitives.ReadInt64LittleEndian(value.AsSpan(8));
        float score = BinaryPrimitives.ReadSingleLittleEndian(value.AsSpan(16));
        var inputs = MemoryMarshal.Cast<byte, float>(value.AsSpan(HeaderBytes, 4 * width));
        var keys = MemoryMarshal.Cast<byte, ulong>(value.AsSpan(HeaderBytes + 4 * width, 8 * ids));
        return _log.Restore(BinaryPrimitives.ReadUInt64BigEndian(key), inputs, keys, score, version, servedMs);
    }

    /// <summary>Produces one row the log took (on the thread that logged it).</summary>
    private void Write(ulong request, ReadOnlySpan<float> inputs, ReadOnlySpan<ulong> ids, float score, long version, long servedMs)
    {
        var key = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(key, request);
        var value = new byte[HeaderBytes + 4 * inputs.Length + 8 * ids.Length];
        BinaryPrimitives.WriteInt64LittleEndian(value, servedMs);
        BinaryPrimitives.WriteInt64LittleEndian(value.AsSpan(8), version);
        BinaryPrimitives.WriteSingleLittleEndian(value.AsSpan(16), score);
        MemoryMarshal.AsBytes(inputs).CopyTo(value.AsSpan(HeaderBytes));
        MemoryMarshal.AsBytes(ids).CopyTo(value.AsSpan(HeaderBytes + 4 * inputs.Length));
        try
        {
            _producer!.Produce(_topic, new Message<byte[], byte[]> { Key = key, Value = value, Timestamp = new Timestamp(servedMs, TimestampType.CreateTime) }, Delivered);
        }
        catch (ProduceException<byte[], byte[]>)
        {
            _metrics.FeatureLogSkipped();
        }
    }

    private void Delivered(DeliveryReport<byte[], byte[]> report)
    {
        if (report.Error.IsError)
        {
            _metrics.FeatureLogSkipped();
        }
    }

    public void Dispose()
    {
        _log.Persist = null;
        _producer?.Flush(TimeSpan.FromSeconds(10));
        _producer?.Dispose();
    }
}

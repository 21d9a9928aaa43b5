using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Confluent.Kafka;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Ingest;

/// <summary>
/// The ingest stage: a consumer-group member on the events topic that decodes events into
/// micro-batches, hands each closed batch to the feature store, and only then stores its offsets
/// for commit. Malformed events are counted, set aside on the dead-letter topic and skipped.
/// </summary>
internal sealed class EventIngestor : BackgroundService
{
    private readonly KafkaConnection _kafka;
    private readonly FeatureStore _features;
    private readonly IngestMetrics _metrics;
    private readonly ILogger _logger;
    private readonly FeatureOptions _options;
    private readonly JsonEventDecoder _decoder;
    private readonly Dictionary<TopicPartition, long> _pending = [];
    private readonly List<PartitionOffset> _applied = [];
    private IProducer<byte[]?, byte[]>? _deadLetters;

    public EventIngestor(KafkaConnection kafka, FeatureStore features, IngestMetrics metrics, IOptions<FeatureOptions> options, ILogger<EventIngestor> logger)
    {
        _kafka = kafka;
        _features = features;
        _metrics = metrics;
        _logger = logger;
        _options = options.Value;
        _decoder = new JsonEventDecoder(features.Plan.NumericFields, features.Plan.KeyFields);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken stopping)
    {
        var topic = _kafka.Options.EventsTopic;
        using var batch = new MicroBatch(_features.Plan.NumericFields, _options.MaxBatchEvents, _features.Plan.KeyFields);
        IConsumer<Ignore, byte[]>? consumer = null;
        consumer = new ConsumerBuilder<Ignore, byte[]>(_kafka.ConsumerConfig(_kafka.Options.GroupId))
            .SetErrorHandler((_, error) => IngestLog.KafkaError(_logger, error.Reason))
            .SetLogHandler((_, message) => OnLog(message))
            .SetPartitionsAssignedHandler((_, partitions) => IngestLog.Assigned(_logger, string.Join(", ", partitions)))
            .SetPartitionsRevokedHandler((_, partitions) =>
            {
                // Runs inside Consume on this thread: apply what was read from these partitions
                // while they are still ours, so their offsets can be stored and committed.
                Flush(consumer!, batch);
                consumer!.CommitStored();
                IngestLog.Revoked(_logger, string.Join(", ", partitions));
            })
            .Build();
        if (!string.IsNullOrWhiteSpace(_kafka.Options.DeadLetterTopic))
        {
            _deadLetters = new ProducerBuilder<byte[]?, byte[]>(_kafka.ProducerConfig()).Build();
        }

        IngestLog.Started(_logger, topic, _kafka.BootstrapServers, _kafka.Options.GroupId, _options.MaxBatchEvents, _options.MaxBatchDelayMs);
        consumer.Subscribe(topic);
        long deadline = 0;
        long nextLagCheck = 0;
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                ConsumeResult<Ignore, byte[]>? result;
                try
                {
                    result = consumer.Consume(_pending.Count == 0 ? 100 : Deadline.RemainingMs(deadline));
                }
                catch (ConsumeException error)
                {
                    // A broker-side problem with one fetch; librdkafka retries by itself.
                    IngestLog.KafkaError(_logger, error.Error.Reason);
                    continue;
                }
                if (result is not null && !result.IsPartitionEOF)
                {
                    if (_pending.Count == 0)
                    {
                        deadline = Deadline.After(_options.MaxBatchDelayMs);
                    }
                    var error = _decoder.TryDecode(result.Message.Value, batch);
                    if (error != DecodeError.None)
                    {
                        SetAside(result, error);
                    }
                    _pending[result.TopicPartition] = result.Offset.Value;
                }
                if (batch.IsFull || (_pending.Count > 0 && Stopwatch.GetTimestamp() >= deadline))
                {
                    Flush(consumer, batch);
                }
                if (Stopwatch.GetTimestamp() >= nextLagCheck)
                {
                    _metrics.Lag(MeasureLag(consumer));
                    nextLagCheck = Deadline.After(500);
                }
            }
            Flush(consumer, batch);
            consumer.CommitStored();
        }
        catch (KafkaException error) when (stopping.IsCancellationRequested)
        {
            IngestLog.KafkaError(_logger, error.Error.Reason);
        }
        catch (Exception error) when (error is not OperationCanceledException)
        {
            IngestLog.ApplyFailed(_logger, error);
            throw;
        }
        finally
        {
            try
            {
                consumer.Close();
            }
            catch (KafkaException error)
            {
                IngestLog.KafkaError(_logger, error.Error.Reason);
            }
            consumer.Dispose();
            _deadLetters?.Flush(TimeSpan.FromSeconds(5));
            _deadLetters?.Dispose();
        }
    }

    /// <summary>Applies the open batch, then stores the offsets of every event read into it.</summary>
    private void Flush(IConsumer<Ignore, byte[]> consumer, MicroBatch batch)
    {
        if (_pending.Count == 0)
        {
            return;
        }
        if (batch.Count > 0)
        {
            _applied.Clear();
            foreach (var (partition, offset) in _pending)
            {
                _applied.Add(new PartitionOffset(partition.Topic, partition.Partition.Value, offset));
            }
            _features.Apply(batch.ToRecordBatch(), CollectionsMarshal.AsSpan(_applied));
        }
        consumer.StoreConsumed(_pending);
        batch.Clear();
    }

    private void SetAside(ConsumeResult<Ignore, byte[]> result, DecodeError error)
    {
        string reason = JsonEventDecoder.Describe(error);
        _metrics.Malformed(reason);
        IngestLog.Malformed(_logger, result.Topic, result.Partition.Value, result.Offset.Value, reason);
        if (_deadLetters is null)
        {
            return;
        }
        var headers = new Headers
        {
            { "inference.error", Encoding.UTF8.GetBytes(reason) },
            { "inference.source", Encoding.UTF8.GetBytes($"{result.Topic}/{result.Partition.Value}/{result.Offset.Value}") },
        };
        try
        {
            _deadLetters.Produce(_kafka.Options.DeadLetterTopic, new Message<byte[]?, byte[]> { Value = result.Message.Value ?? [], Headers = headers },
                report =>
                {
                    if (report.Error.IsError)
                    {
                        IngestLog.DeadLetterFailed(_logger, _kafka.Options.DeadLetterTopic, report.Error.Reason);
                    }
                });
        }
        catch (ProduceException<byte[]?, byte[]> produceError)
        {
            IngestLog.DeadLetterFailed(_logger, _kafka.Options.DeadLetterTopic, produceError.Error.Reason);
        }
    }

    private void OnLog(LogMessage message)
    {
        // librdkafka reports an offset reset caused by data the broker no longer holds only in its
        // log. Retention can drop events the engine never saw: that is data loss, never silent.
        if (message.Message.Contains("out of range", StringComparison.OrdinalIgnoreCase)
            && message.Message.Contains("reset", StringComparison.OrdinalIgnoreCase))
        {
            _metrics.DataLoss();
            IngestLog.DataLoss(_logger, message.Message);
        }
        else if (message.Level <= SyslogLevel.Warning)
        {
            IngestLog.KafkaLog(_logger, message.Facility, message.Message);
        }
    }

    private static long MeasureLag(IConsumer<Ignore, byte[]> consumer)
    {
        long lag = 0;
        foreach (var partition in consumer.Assignment)
        {
            var watermarks = consumer.GetWatermarkOffsets(partition);
            var position = consumer.Position(partition);
            if (watermarks.High.Value >= 0 && position.Value >= 0)
            {
                lag += Math.Max(0, watermarks.High.Value - position.Value);
            }
        }
        return lag;
    }
}

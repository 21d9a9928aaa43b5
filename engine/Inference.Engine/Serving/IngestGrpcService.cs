using System.Threading.Channels;
using Confluent.Kafka;
using Google.Protobuf;
using Grpc.Core;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Proto.V1;
using Microsoft.Extensions.Options;
using FeatureWatermark = Inference.Proto.V1.FeatureWatermark;

namespace Inference.Engine.Serving;

/// <summary>
/// gRPC streaming ingestion: each <c>EventBatch</c> is checked event by event as Kafka ingest would
/// check it, its good events are written through to the events topic (idempotent producer, acks=all,
/// keyed by entity with Kafka's murmur2 partitioner so partitions match other producers), and the
/// batch is acked once every write is durable. Events flow into the features through the topic like
/// any other, so a restart or another node sees them too. With <c>wait_visible</c> the ack waits
/// until the features cover the batch and carries that watermark. At most
/// <see cref="KafkaOptions.MaxUnackedIngestBatches"/> batches of a stream are in flight: beyond that
/// the server stops reading and HTTP/2 flow control holds the client back.
/// </summary>
internal sealed class IngestGrpcService(EventWriter writer, DeviceExecutor executor, IngestMetrics metrics, IOptions<KafkaOptions> options)
    : IngestService.IngestServiceBase
{
    private readonly int _maxUnacked = options.Value.MaxUnackedIngestBatches;

    public override async Task Ingest(IAsyncStreamReader<EventBatch> requestStream, IServerStreamWriter<IngestAck> responseStream, ServerCallContext context)
    {
        var cancellation = context.CancellationToken;
        // Acks go back in order; the bounded channel is the limit on batches in flight.
        var pending = Channel.CreateBounded<Task<IngestAck>>(new BoundedChannelOptions(_maxUnacked) { SingleReader = true, SingleWriter = true });
        var acks = WriteAcksAsync(pending.Reader, responseStream, cancellation);
        long sequence = 0;
        try
        {
            await foreach (var batch in requestStream.ReadAllAsync(cancellation).ConfigureAwait(false))
            {
                await pending.Writer.WriteAsync(HandleAsync(batch, sequence++, cancellation), cancellation).ConfigureAwait(false);
            }
        }
        finally
        {
            pending.Writer.TryComplete();
        }
        await acks.ConfigureAwait(false);
    }

    private static async Task WriteAcksAsync(ChannelReader<Task<IngestAck>> pending, IServerStreamWriter<IngestAck> responses, CancellationToken cancellation)
    {
        await foreach (var ack in pending.ReadAllAsync(cancellation).ConfigureAwait(false))
        {
            await responses.WriteAsync(await ack.ConfigureAwait(false), cancellation).ConfigureAwait(false);
        }
    }

    private async Task<IngestAck> HandleAsync(EventBatch batch, long sequence, CancellationToken cancellation)
    {
        var ack = new IngestAck { Sequence = sequence };
        var payloads = new byte[batch.Events.Count][];
        long maxTimeMs = writer.MaxTimeMs();
        for (int i = 0; i < batch.Events.Count; i++)
        {
            var payload = batch.Events[i].ToByteArray();
            var error = writer.Check(payload, maxTimeMs);
            if (error != DecodeError.None)
            {
                string reason = DecodeErrors.Describe(error);
                ack.Rejected.Add(new RejectedEvent { Index = i, Reason = reason });
                metrics.Malformed(reason);
                continue;
            }
            payloads[i] = payload;
        }
        List<PartitionOffset> written;
        try
        {
            written = await writer.WriteAsync(batch, payloads, cancellation).ConfigureAwait(false);
        }
        catch (ProduceException<byte[], byte[]> error)
        {
            // Nothing of this batch is acked: the client retries it (the idempotent producer keeps
            // retries within one write from duplicating; a retried batch is a new write).
            throw new RpcException(new Status(StatusCode.Unavailable, $"Writing batch {sequence} to the events topic failed: {error.Error.Reason}."));
        }
        ack.Accepted = batch.Events.Count - ack.Rejected.Count;
        metrics.IngestedOverGrpc(ack.Accepted, ack.Rejected.Count);
        ack.Written = new FeatureWatermark();
        Features.FeatureWatermark.AddTo(ack.Written.Partitions, written);
        if (batch.WaitVisible && written.Count > 0)
        {
            // The batch is written either way: when too many calls wait already (MaxWatermarkWaiters) the ack
            // comes without 'visible' rather than as an error a client would answer by writing it again.
            if (executor.WaitForAsync(written, cancellation) is { } visible)
            {
                await visible.ConfigureAwait(false);
                ack.Visible = executor.Watermark.Message;
            }
        }
        return ack;
    }
}

/// <summary>Writes checked events through to the events topic; shared by every ingest stream.</summary>
internal sealed class EventWriter : IDisposable
{
    private readonly IProducer<byte[], byte[]> _producer;
    private readonly string _topic;
    private readonly ProtobufEventDecoder _decoder;
    private static readonly byte[] ContentType = "application/x-protobuf"u8.ToArray();

    private readonly long _maxFutureMs;
    private readonly TimeProvider _time;
    private readonly int _flushTimeoutMs;

    public EventWriter(Kafka.KafkaConnection kafka, DeviceExecutor executor, IOptions<FeatureOptions> features, TimeProvider time)
    {
        _time = time;
        _flushTimeoutMs = kafka.Options.FlushTimeoutMs;
        _topic = kafka.Options.EventsTopic;
        _maxFutureMs = features.Value.MaxFutureMs;
        _decoder = new ProtobufEventDecoder(executor.Plan.NumericFields, executor.Plan.KeyFields);
        var config = kafka.ProducerConfig();
        config.Acks = Acks.All;
        // Kafka's own default partitioner for keyed messages (Java clients, kcat -X partitioner=murmur2_random):
        // an entity's events land on one partition whoever produces them.
        config.Partitioner = Partitioner.Murmur2Random;
        config.LingerMs = 1;
        _producer = new ProducerBuilder<byte[], byte[]>(config).Build();
    }

    /// <summary>Checks an event as Kafka ingest will (including its time against the wall clock).</summary>
    public DecodeError Check(ReadOnlySpan<byte> payload, long maxTimeMs) => _decoder.Check(payload, maxTimeMs);

    /// <summary>The newest event time taken now.</summary>
    public long MaxTimeMs() => FeatureOptions.LatestEventTimeMs(_time, _maxFutureMs);

    /// <summary>Writes the non-null payloads keyed by entity; returns, per partition, the offset of the last one once all are durable.</summary>
    public async Task<List<PartitionOffset>> WriteAsync(EventBatch batch, byte[]?[] payloads, CancellationToken cancellation)
    {
        var writes = new List<Task<DeliveryResult<byte[], byte[]>>>(payloads.Length);
        for (int i = 0; i < payloads.Length; i++)
        {
            if (payloads[i] is not { } payload)
            {
                continue;
            }
            var message = new Message<byte[], byte[]>
            {
                Key = System.Text.Encoding.UTF8.GetBytes(batch.Events[i].Entity),
                Value = payload,
                Headers = new Headers { { "content-type", ContentType } },
            };
            writes.Add(_producer.ProduceAsync(_topic, message, cancellation));
        }
        var results = await Task.WhenAll(writes).ConfigureAwait(false);
        var last = new Dictionary<int, long>();
        foreach (var result in results)
        {
            int partition = result.Partition.Value;
            last[partition] = Math.Max(last.GetValueOrDefault(partition, -1), result.Offset.Value);
        }
        var offsets = new List<PartitionOffset>(last.Count);
        foreach (var (partition, offset) in last)
        {
            offsets.Add(new PartitionOffset(_topic, partition, offset));
        }
        offsets.Sort((a, b) => a.Partition.CompareTo(b.Partition));
        return offsets;
    }

    public void Dispose()
    {
        _producer.Flush(TimeSpan.FromMilliseconds(_flushTimeoutMs));
        _producer.Dispose();
    }
}

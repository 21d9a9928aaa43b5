using Confluent.Kafka;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Ingest;

/// <summary>
/// A consumer-group member that takes messages from librdkafka in batches and decodes them in place
/// into a sink's batch, for events and labels alike. Group membership, rebalance callbacks and
/// commits stay with Confluent.Kafka; messages come from <c>rd_kafka_consume_batch_queue</c> on the
/// same consumer's queue, payloads read in native memory, so nothing is allocated per message.
/// </summary>
/// <remarks>
/// A batch closes when full, when <see cref="BatchSourceSettings.MaxBatchDelayMs"/> has passed since its
/// first message, or (for sinks that want it) as soon as nothing more is buffered while the device is
/// free: at low load an event is applied about one fetch after it is produced, at high load batches
/// fill. Offsets are stored for commit only once their batch is done; on revocation the open batch
/// is applied and committed while its partitions are still ours. Malformed messages are counted, set
/// aside on the dead-letter topic with the reason, and skipped.
/// </remarks>
internal sealed unsafe partial class KafkaBatchSource<TSink> : IDisposable, ICheckpointedSource
    where TSink : class, IBatchSink
{
    private const int MaxMessagesPerCall = 4_096;
    private const int LagIntervalMs = 500;
    private const int DeadLetterWarningMs = 5_000;

    // Not a timeout: how long one flush of the dead-letter producer waits before the loop that writes them retries what failed.
    private const int DeadLetterFlushPollMs = 100;

    private readonly BatchSourceSettings _settings;
    private readonly TSink _sink;
    private readonly TimeProvider _time;
    private readonly KafkaOptions _kafka;
    private readonly ILogger _logger;
    private readonly IConsumer<Ignore, Ignore> _consumer;
    // Follow mode: the ownership version last followed and the partitions assigned from it.
    private readonly HashSet<int> _following = [];
    private long _followed = -1;
    private readonly IntPtr _queue;
    private readonly IntPtr _rk;
    private readonly IntPtr[] _messages = new IntPtr[MaxMessagesPerCall];
    private readonly HeldOffsets _held = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<Message<byte[]?, byte[]>> _deadLetterRetries = new();
    private readonly Dictionary<int, long> _resume;
    private IProducer<byte[]?, byte[]>? _deadLetters;
    private long _deadLettersProduced;
    private long _deadLettersWritten;
    private IReadOnlyList<PartitionOffset>? _checkpointCommit;
    private Dictionary<int, long>? _catchUpTargets;
    private bool _assigned;
    private bool _caughtUp;
    private OffsetSet _open = new();
    private OffsetSet _submitted = new();
    private bool _isOpen;
    private long _deadline;
    private long _nextLag;
    private bool _disposed;

    public KafkaBatchSource(KafkaConnection kafka, BatchSourceSettings settings, TSink sink, TimeProvider time, ILogger logger)
    {
        _time = time;
        _kafka = kafka.Options;
        _settings = settings;
        _sink = sink;
        _logger = logger;
        RdKafkaNative.EnsureLoaded();
        _consumer = new ConsumerBuilder<Ignore, Ignore>(kafka.ConsumerConfig(settings.GroupId))
            .SetErrorHandler((_, error) => IngestLog.KafkaError(_logger, error.Reason))
            .SetLogHandler((_, message) => OnLog(message))
            .SetPartitionsAssignedHandler((_, partitions) => OnAssigned(partitions))
            .SetPartitionsRevokedHandler((_, partitions) => OnRevoked(partitions))
            .SetPartitionsLostHandler((_, partitions) => OnLost(partitions))
            .Build();
        _rk = RdKafkaNative.HandleOf(_consumer);
        _queue = RdKafkaNative.rd_kafka_queue_get_consumer(_rk);
        if (!string.IsNullOrWhiteSpace(settings.DeadLetterTopic))
        {
            _deadLetters = new ProducerBuilder<byte[]?, byte[]>(kafka.ProducerConfig()).Build();
        }
        _resume = settings.Resume.Where(r => r.Topic == settings.Topic).ToDictionary(r => r.Partition, r => r.Offset);
        foreach (var (partition, offset) in _resume)
        {
            _held.Take(partition, offset);
        }
        _caughtUp = settings.CaughtUp is null;
        if (settings.Follows is null)
        {
            _consumer.Subscribe(settings.Topic);
        }
    }

    public string Topic => _settings.Topic;

    /// <summary>Dead letters handed to the producer so far (each counted once, however often it is retried).</summary>
    public long DeadLettersProduced => Interlocked.Read(ref _deadLettersProduced);

    /// <summary>Dead letters the broker has acknowledged so far.</summary>
    public long DeadLettersWritten => Interlocked.Read(ref _deadLettersWritten);

    /// <summary>
    /// Commits <paramref name="offsets"/> (per partition, the last offset a durable checkpoint holds) on
    /// the consumer's thread at its next poll, for the partitions this member still owns. Any thread.
    /// </summary>
    public void CommitCheckpointed(IReadOnlyList<PartitionOffset> offsets) => Volatile.Write(ref _checkpointCommit, offsets);

    /// <summary>
    /// One step: takes what librdkafka has buffered (waiting up to <paramref name="idleWaitMs"/> for a
    /// first message when no batch is open), decodes it, and submits the batch when it is due.
    /// </summary>
    public void Poll(int idleWaitMs)
    {
        if (_settings.Follows is { } ownership)
        {
            Follow(ownership);
        }
        if (!_isOpen && _submitted.Count > 0 && !_sink.Busy)
        {
            StoreSubmitted();
        }
        CommitPendingCheckpoint();
        if (!_caughtUp)
        {
            CheckCaughtUp();
        }
        if (_sink.IsFull)
        {
            Flush();
        }
        // Single-event messages: no more than the batch has room for. (A message of many rows may
        // overflow the batch; the rest goes into the next one.)
        int want = Math.Clamp(_sink.Room, 1, _messages.Length);
        long got = Consume(0, want);
        if (got == 0)
        {
            if (!_isOpen)
            {
                // Idle: wake on the first message.
                got = Consume(idleWaitMs, 1);
            }
            else if ((_sink.CloseWhenIdle && !_sink.Busy) || _time.GetTimestamp() >= _deadline)
            {
                Flush();
                return;
            }
            else
            {
                // The device is busy with the previous batch (or the sink wants full batches): wait
                // for more, briefly when the batch closes as soon as the device is free.
                int remaining = Deadline.RemainingMs(_time, _deadline);
                got = Consume(_sink.CloseWhenIdle ? Math.Min(1, remaining) : remaining, want);
            }
        }
        for (long i = 0; i < got; i++)
        {
            Handle(_messages[i]);
            _messages[i] = IntPtr.Zero;
        }
        if (_isOpen && (_sink.IsFull || _time.GetTimestamp() >= _deadline))
        {
            Flush();
        }
        if (_settings.Lag is not null && _time.GetTimestamp() >= _nextLag)
        {
            _settings.Lag(MeasureLag());
            _nextLag = Deadline.After(_time, LagIntervalMs);
        }
    }

    /// <summary>Submits the open batch and waits for every batch, then stores and commits their offsets.</summary>
    private void FlushAndCommit(int deadLetterWaitMs)
    {
        Flush();
        _sink.Drain();
        StoreSubmitted(deadLetterWaitMs);
        CommitPendingCheckpoint();
        if (_settings.CommitsFollowCheckpoints)
        {
            return;
        }
        try
        {
            _consumer.CommitStored();
        }
        catch (KafkaException error)
        {
            IngestLog.KafkaError(_logger, error.Error.Reason);
        }
    }

    private long Consume(int timeoutMs, int count)
    {
        fixed (IntPtr* messages = _messages)
        {
            long got = RdKafkaNative.rd_kafka_consume_batch_queue(_queue, timeoutMs, messages, (nuint)count);
            return Math.Max(0, got);
        }
    }

    private void Handle(IntPtr pointer)
    {
        var message = (RdKafkaNative.Message*)pointer;
        try
        {
            if (message->Error != 0)
            {
                if (message->Error != RdKafkaNative.PartitionEof)
                {
                    IngestLog.KafkaError(_logger, RdKafkaNative.ErrorText(message->Error));
                }
                return;
            }
            int partition = message->Partition;
            long offset = message->Offset;
            if (!_held.Take(partition, offset))
            {
                // Read again (a rebalance, an offset rewound to before what was applied): the state
                // already holds it. Skipped, and its offset still counts toward the commit.
                _settings.Replayed?.Invoke();
                Open();
                _open.Set(partition, offset);
                return;
            }
            var format = FormatOf(pointer);
            var payload = (byte*)message->Payload;
            int length = checked((int)message->Length);
            Open();
            _sink.At(partition, offset, _settings.TracksPositions ? RdKafkaNative.rd_kafka_message_timestamp(pointer, out _) : 0);
            int resume = 0;
            DecodeError error;
            while (true)
            {
                if (_sink.IsFull)
                {
                    // A message of many rows did not fit: apply what did (this message's offset is
                    // not yet covered), then go on with its remaining rows in the next batch.
                    Flush();
                    Open();
                }
                error = format == EventFormat.Unknown ? DecodeError.UnknownContentType : _sink.Accept(format, payload, length, ref resume);
                if (resume == 0 || error != DecodeError.None)
                {
                    break;
                }
            }
            if (error != DecodeError.None)
            {
                SetAside(partition, offset, payload, length, error, pointer);
            }
            _open.Set(partition, offset);
        }
        finally
        {
            RdKafkaNative.rd_kafka_message_destroy(pointer);
        }
    }

    private void Open()
    {
        if (!_isOpen)
        {
            _isOpen = true;
            _deadline = Deadline.After(_time, _settings.MaxBatchDelayMs);
        }
    }

    /// <summary>Submits the open batch; the batch before it is then done and its offsets are stored.</summary>
    private void Flush()
    {
        if (!_isOpen)
        {
            return;
        }
        _isOpen = false;
        var offsets = _open.ToWatermark(_settings.Topic);
        _sink.Submit(offsets);
        StoreSubmitted();
        // The open set becomes the submitted one, stored once its batch is done; the emptied one is reused.
        (_submitted, _open) = (_open, _submitted);
    }

    private EventFormat FormatOf(IntPtr message)
    {
        if (RdKafkaNative.rd_kafka_message_headers(message, out var headers) != 0)
        {
            return _settings.DefaultFormat;
        }
        fixed (byte* name = "content-type"u8)
        {
            if (RdKafkaNative.rd_kafka_header_get_last(headers, name, out var value, out var size) != 0 || value == IntPtr.Zero)
            {
                return _settings.DefaultFormat;
            }
            return EventContentTypes.Parse(new ReadOnlySpan<byte>((void*)value, checked((int)size)));
        }
    }

    private void OnLog(LogMessage message)
    {
        // librdkafka reports an offset reset caused by data the broker no longer holds only in its
        // log. Retention can drop events the engine never saw: that is data loss, never silent.
        if (message.Message.Contains("out of range", StringComparison.OrdinalIgnoreCase)
            && message.Message.Contains("reset", StringComparison.OrdinalIgnoreCase))
        {
            _settings.DataLoss?.Invoke();
            IngestLog.DataLoss(_logger, message.Message);
        }
        else if (message.Level <= SyslogLevel.Warning)
        {
            IngestLog.KafkaLog(_logger, message.Facility, message.Message);
        }
    }

    /// <summary>Applies and commits what was read, leaves the group, and releases the consumer.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        try
        {
            // Shutdown: apply what was read, set aside what was malformed, then commit; a dead-letter
            // topic still unwritable after a while leaves those offsets uncommitted instead.
            FlushAndCommit(_kafka.DeadLetterShutdownTimeoutMs);
        }
        finally
        {
            RdKafkaNative.rd_kafka_queue_destroy(_queue);
            try
            {
                _consumer.Close();
            }
            catch (KafkaException error)
            {
                IngestLog.KafkaError(_logger, error.Error.Reason);
            }
            _consumer.Dispose();
            _deadLetters?.Flush(TimeSpan.FromMilliseconds(_kafka.FlushTimeoutMs));
            _deadLetters?.Dispose();
        }
    }

    /// <summary>Grows a per-partition array of offsets to hold <paramref name="partition"/>; new entries are -1 (none).</summary>
    private static void Reach(ref long[] offsets, int partition)
    {
        if (partition >= offsets.Length)
        {
            int old = offsets.Length;
            Array.Resize(ref offsets, Math.Max(partition + 1, old * 2));
            offsets.AsSpan(old).Fill(-1);
        }
    }
}

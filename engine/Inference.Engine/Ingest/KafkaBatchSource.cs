using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Confluent.Kafka;
using Inference.Engine.Features;
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
internal sealed unsafe partial class KafkaBatchSource<TSink> : IDisposable, Checkpoints.ICheckpointedSource
    where TSink : class, IBatchSink
{
    private const int MaxMessagesPerCall = 4_096;
    private const int LagIntervalMs = 500;
    private const int DeadLetterWarningMs = 5_000;
    private const int ShutdownDeadLetterWaitMs = 10_000;

    private readonly BatchSourceSettings _settings;
    private readonly TSink _sink;
    private readonly ILogger _logger;
    private readonly IConsumer<Ignore, Ignore> _consumer;
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

    public KafkaBatchSource(KafkaConnection kafka, BatchSourceSettings settings, TSink sink, ILogger logger)
    {
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

    private long _followed = -1;
    private readonly HashSet<int> _following = [];

    /// <summary>
    /// Follow mode: takes up the owned partitions' numbers when they changed. Partitions no longer owned are
    /// applied and committed, then dropped; new ones start where the checkpoint or the committed offset says.
    /// </summary>
    private void Follow(PartitionOwnership ownership)
    {
        long version = ownership.Version;
        if (version == _followed)
        {
            return;
        }
        _followed = version;
        var target = ownership.Owned.ToHashSet();
        var gone = _following.Where(p => !target.Contains(p)).ToList();
        if (gone.Count > 0)
        {
            FlushAndCommit(Timeout.Infinite);
            _consumer.IncrementalUnassign([.. gone.Select(p => new TopicPartition(_settings.Topic, p))]);
            _following.ExceptWith(gone);
            IngestLog.Revoked(_logger, _settings.Topic, string.Join(", ", gone));
        }
        var added = target.Where(p => !_following.Contains(p)).Order().ToList();
        if (added.Count > 0)
        {
            _consumer.IncrementalAssign(OnAssigned([.. added.Select(p => new TopicPartition(_settings.Topic, p))]));
            _following.UnionWith(added);
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
            else if ((_sink.CloseWhenIdle && !_sink.Busy) || Stopwatch.GetTimestamp() >= _deadline)
            {
                Flush();
                return;
            }
            else
            {
                // The device is busy with the previous batch (or the sink wants full batches): wait
                // for more, briefly when the batch closes as soon as the device is free.
                int remaining = Deadline.RemainingMs(_deadline);
                got = Consume(_sink.CloseWhenIdle ? Math.Min(1, remaining) : remaining, want);
            }
        }
        for (long i = 0; i < got; i++)
        {
            Handle(_messages[i]);
            _messages[i] = IntPtr.Zero;
        }
        if (_isOpen && (_sink.IsFull || Stopwatch.GetTimestamp() >= _deadline))
        {
            Flush();
        }
        if (_settings.Lag is not null && Stopwatch.GetTimestamp() >= _nextLag)
        {
            _settings.Lag(MeasureLag());
            _nextLag = Deadline.After(LagIntervalMs);
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
            _deadline = Deadline.After(_settings.MaxBatchDelayMs);
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

    /// <summary>Stores, for commit, the offset after the last one of each partition in the submitted batch.</summary>
    private void StoreSubmitted(int deadLetterWaitMs = Timeout.Infinite)
    {
        if (_submitted.Count == 0)
        {
            return;
        }
        if (!DeadLettersDurable(deadLetterWaitMs))
        {
            // Shutting down with dead letters unwritten: store nothing, so these events are read again.
            IngestLog.DeadLettersUnwritten(_logger, _settings.DeadLetterTopic);
            _submitted.Clear();
            return;
        }
        if (_settings.CommitsFollowCheckpoints)
        {
            // The batch is applied; its offsets are committed once a durable checkpoint holds them.
            _submitted.Clear();
            return;
        }
        var list = RdKafkaNative.rd_kafka_topic_partition_list_new(_submitted.Count);
        try
        {
            foreach (int partition in _submitted.Partitions)
            {
                var element = (RdKafkaNative.TopicPartition*)RdKafkaNative.rd_kafka_topic_partition_list_add(list, _settings.Topic, partition);
                element->Offset = _submitted.Last(partition) + 1;
            }
            // Partitions revoked meanwhile are refused (their new owner reads them again): not an error here.
            _ = RdKafkaNative.rd_kafka_offsets_store(_rk, list);
        }
        finally
        {
            RdKafkaNative.rd_kafka_topic_partition_list_destroy(list);
        }
        _submitted.Clear();
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

    private List<TopicPartitionOffset> OnAssigned(List<TopicPartition> partitions)
    {
        IngestLog.Assigned(_logger, _settings.Topic, string.Join(", ", partitions.Select(p => p.Partition.Value)));
        _assigned = true;
        // Marked as catching up before they are published as owned: no row of theirs is read unmarked before
        // their restore and replay targets are known (TrackCatchUp sets or clears each).
        _settings.Publishes?.Arriving(partitions.Select(p => p.Partition.Value));
        _settings.Publishes?.Assigned(_settings.Topic, partitions.Select(p => p.Partition.Value));
        var positions = new List<TopicPartitionOffset>(partitions.Count);
        if (_settings.Handoff is { } handoff)
        {
            // A pool: the arriving partitions' entities come from the newest checkpoint that holds them (or
            // stay as this worker holds them when that is newer); what no checkpoint holds is read from the start.
            // The first time: partitions this worker's own checkpoint held but the group gave to others are dropped.
            var notOwned = _resume.Keys.Where(p => !partitions.Exists(a => a.Partition.Value == p)).ToList();
            var held = handoff.Arrive([.. partitions.Select(p => (p.Partition.Value, _held.Newest(p.Partition.Value)))], notOwned);
            foreach (int partition in notOwned)
            {
                _held.Reset(partition, -1);
            }
            _resume.Clear();
            foreach (var partition in partitions)
            {
                long last = held[partition.Partition.Value];
                _held.Reset(partition.Partition.Value, last);
                positions.Add(new TopicPartitionOffset(partition, last >= 0 ? new Offset(last + 1) : Offset.Beginning));
                TrackCatchUp(partition, last);
            }
            return positions;
        }
        foreach (var partition in partitions)
        {
            // The first time a partition the checkpoint holds is ours, start right after what it holds
            // (the checkpoint is the truth; the committed offset may be older). Otherwise the committed one.
            long next = _resume.Remove(partition.Partition.Value, out long last) ? last + 1 : Offset.Unset;
            positions.Add(new TopicPartitionOffset(partition, new Offset(next)));
            if (next != Offset.Unset)
            {
                TrackCatchUp(partition, last);
            }
            else
            {
                // Where it starts (the committed offset) is not known here: readiness at start covers its catch-up.
                _settings.Publishes?.CaughtUp(partition.Partition.Value);
            }
        }
        return positions;
    }

    /// <summary>
    /// An arriving events partition whose state holds up to <paramref name="held"/>: while the applied
    /// state is behind where the partition ends now, its rows are marked as catching up (Score's origins).
    /// </summary>
    private void TrackCatchUp(TopicPartition partition, long held)
    {
        if (_settings.Publishes is not { } ownership)
        {
            return;
        }
        try
        {
            long end = _consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(5)).High.Value - 1;
            if (end > held)
            {
                ownership.CatchUp(partition.Partition.Value, end);
                return;
            }
        }
        catch (KafkaException)
        {
            // The end is not known: the partition is not marked (readiness still waits for the catch-up at start).
        }
        ownership.CaughtUp(partition.Partition.Value);
    }

    /// <summary>Commits the newest checkpointed offsets handed over (the checkpoint waited for their dead letters), for the partitions still assigned.</summary>
    private void CommitPendingCheckpoint()
    {
        var offsets = Interlocked.Exchange(ref _checkpointCommit, null);
        if (offsets is null)
        {
            return;
        }
        var assigned = _consumer.Assignment;
        var commit = new List<TopicPartitionOffset>(offsets.Count);
        foreach (var offset in offsets)
        {
            if (offset.Topic == _settings.Topic && assigned.Exists(p => p.Partition.Value == offset.Partition))
            {
                commit.Add(new TopicPartitionOffset(offset.Topic, offset.Partition, offset.Offset + 1));
            }
        }
        if (commit.Count == 0)
        {
            return;
        }
        try
        {
            _consumer.Commit(commit);
        }
        catch (KafkaException error)
        {
            // The next checkpoint commits again; until then lag reads a little high.
            IngestLog.KafkaError(_logger, error.Error.Reason);
        }
    }

    /// <summary>
    /// Readiness after a restart: once the first assignment is known, notes where each of its partitions
    /// ends, and reports once everything up to there is read and applied.
    /// </summary>
    private void CheckCaughtUp()
    {
        if (!_assigned)
        {
            return;
        }
        if (_catchUpTargets is null)
        {
            try
            {
                _catchUpTargets = CatchUpTargets();
            }
            catch (KafkaException error)
            {
                // The broker did not answer in time: asked again at the next poll; readiness waits.
                IngestLog.KafkaError(_logger, error.Error.Reason);
                return;
            }
        }
        if (_isOpen || _submitted.Count > 0 || _sink.Busy)
        {
            return;
        }
        long behind = 0;
        foreach (var (partition, last) in _catchUpTargets)
        {
            behind += Math.Max(0, last - _held.Newest(partition));
        }
        if (behind > _settings.CaughtUpWithin)
        {
            return;
        }
        _caughtUp = true;
        _settings.CaughtUp!();
    }

    /// <summary>Per assigned partition with something to read, the last offset it holds now.</summary>
    private Dictionary<int, long> CatchUpTargets()
    {
        var targets = new Dictionary<int, long>();
        var assigned = _consumer.Assignment;
        var committed = _consumer.Committed(assigned, TimeSpan.FromSeconds(10));
        foreach (var partition in assigned)
        {
            // Nothing to read past the committed offset: no target. (What a restored checkpoint holds is
            // already held, so a partition it covers to the end is caught up as it is.)
            var ends = _consumer.QueryWatermarkOffsets(partition, TimeSpan.FromSeconds(10));
            long start = committed.Find(c => c.Partition == partition.Partition)?.Offset.Value ?? Offset.Unset;
            if (ends.High.Value > Math.Max(start, ends.Low.Value))
            {
                targets[partition.Partition.Value] = ends.High.Value - 1;
            }
        }
        return targets;
    }

    private void OnRevoked(List<TopicPartitionOffset> partitions)
    {
        // Runs inside a poll on this thread: apply what was read from these partitions while they
        // are still ours, so their offsets can be stored and committed before the new owner starts.
        try
        {
            FlushAndCommit(Timeout.Infinite);
            _sink.Settle();
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            // An exception must not unwind through librdkafka; the consume loop sees the sink's failure again.
            IngestLog.RevokeFailed(_logger, _settings.Topic, error);
        }
        _settings.Publishes?.Revoked(_settings.Topic, partitions.Select(p => p.Partition.Value));
        Hand(partitions);
        IngestLog.Revoked(_logger, _settings.Topic, string.Join(", ", partitions.Select(p => p.Partition.Value)));
    }

    /// <summary>In a pool: the leaving partitions' state is checkpointed for their next owner, then dropped here.</summary>
    private void Hand(List<TopicPartitionOffset> partitions)
    {
        if (_settings.Handoff is not { } handoff)
        {
            return;
        }
        try
        {
            handoff.Leave([.. partitions.Select(p => p.Partition.Value)]);
        }
        catch (Exception error) when (error is not OutOfMemoryException)
        {
            IngestLog.RevokeFailed(_logger, _settings.Topic, error);
        }
        foreach (var partition in partitions)
        {
            _held.Reset(partition.Partition.Value, -1);
        }
    }

    private void OnLost(List<TopicPartitionOffset> partitions)
    {
        // The group moved on without us: what was read is applied (at least once), its commit would fail.
        Flush();
        _sink.Drain();
        _submitted.Clear();
        _settings.Publishes?.Revoked(_settings.Topic, partitions.Select(p => p.Partition.Value));
        Hand(partitions);
        IngestLog.Lost(_logger, _settings.Topic, string.Join(", ", partitions.Select(p => p.Partition.Value)));
    }

    /// <summary>
    /// Sets a malformed message aside on the dead-letter topic: its payload, original key, timestamp and
    /// headers, plus <c>inference.error</c> (the reason) and <c>inference.source</c> (topic/partition/offset).
    /// The write is tracked: no offset is stored for commit until every dead letter is acknowledged.
    /// </summary>
    private void SetAside(int partition, long offset, byte* payload, int length, DecodeError error, IntPtr message)
    {
        string reason = DecodeErrors.Describe(error);
        _settings.Malformed(reason);
        IngestLog.Malformed(_logger, _settings.Topic, partition, offset, reason);
        if (_deadLetters is null)
        {
            return;
        }
        Interlocked.Increment(ref _deadLettersProduced);
        var native = (RdKafkaNative.Message*)message;
        var headers = new Headers();
        if (RdKafkaNative.rd_kafka_message_headers(message, out var original) == 0)
        {
            for (nuint i = 0; RdKafkaNative.rd_kafka_header_get_all(original, i, out var name, out var value, out var size) == 0; i++)
            {
                headers.Add(Marshal.PtrToStringUTF8(name) ?? "", value == IntPtr.Zero ? null : new ReadOnlySpan<byte>((void*)value, checked((int)size)).ToArray());
            }
        }
        headers.Add("inference.error", Encoding.UTF8.GetBytes(reason));
        headers.Add("inference.source", Encoding.UTF8.GetBytes($"{_settings.Topic}/{partition}/{offset}"));
        long timestamp = RdKafkaNative.rd_kafka_message_timestamp(message, out _);
        var letter = new Message<byte[]?, byte[]>
        {
            Key = native->Key == IntPtr.Zero ? null : new ReadOnlySpan<byte>((void*)native->Key, checked((int)native->KeyLength)).ToArray(),
            Value = new ReadOnlySpan<byte>(payload, length).ToArray(),
            Headers = headers,
            Timestamp = timestamp >= 0 ? new Timestamp(timestamp, TimestampType.CreateTime) : Timestamp.Default,
        };
        ProduceDeadLetter(letter);
    }

    private void ProduceDeadLetter(Message<byte[]?, byte[]> letter)
    {
        try
        {
            _deadLetters!.Produce(_settings.DeadLetterTopic, letter, report =>
            {
                if (report.Error.IsError)
                {
                    // Kept and written again before any offset is stored: the event is never lost.
                    IngestLog.DeadLetterFailed(_logger, _settings.DeadLetterTopic, report.Error.Reason);
                    _deadLetterRetries.Enqueue(letter);
                }
                else
                {
                    Interlocked.Increment(ref _deadLettersWritten);
                }
            });
        }
        catch (ProduceException<byte[]?, byte[]> produceError)
        {
            IngestLog.DeadLetterFailed(_logger, _settings.DeadLetterTopic, produceError.Error.Reason);
            _deadLetterRetries.Enqueue(letter);
        }
    }

    /// <summary>
    /// Waits until every dead letter written so far is acknowledged, writing failed ones again: offsets
    /// past a malformed message are never committed before it is safely set aside. While the
    /// dead-letter topic cannot be written, consumption waits here (and says so).
    /// </summary>
    /// <returns>False when <paramref name="giveUpAfterMs"/> passed first (shutdown: nothing is stored, the events are read again).</returns>
    private bool DeadLettersDurable(int giveUpAfterMs = Timeout.Infinite)
    {
        // Every letter is counted once when set aside and once when acknowledged, however often it was
        // written again: durable when the two counts meet.
        if (_deadLetters is null || DeadLettersWritten == DeadLettersProduced)
        {
            return true;
        }
        long started = Stopwatch.GetTimestamp();
        long nextWarning = Deadline.After(DeadLetterWarningMs);
        while (true)
        {
            while (_deadLetterRetries.TryDequeue(out var letter))
            {
                ProduceDeadLetter(letter);
            }
            _deadLetters.Flush(TimeSpan.FromMilliseconds(100));
            if (DeadLettersWritten == DeadLettersProduced)
            {
                return true;
            }
            if (giveUpAfterMs != Timeout.Infinite && Stopwatch.GetElapsedTime(started).TotalMilliseconds > giveUpAfterMs)
            {
                return false;
            }
            if (Stopwatch.GetTimestamp() >= nextWarning)
            {
                IngestLog.DeadLettersHeld(_logger, _settings.DeadLetterTopic, DeadLettersProduced - DeadLettersWritten);
                nextWarning = Deadline.After(DeadLetterWarningMs);
            }
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

    /// <summary>
    /// Events behind the end of the assigned partitions, from librdkafka's cached high watermarks and
    /// positions (no broker round trip, no managed allocation).
    /// </summary>
    private long MeasureLag()
    {
        if (RdKafkaNative.rd_kafka_assignment(_rk, out var list) != 0 || list == IntPtr.Zero)
        {
            return 0;
        }
        long lag = 0;
        try
        {
            RdKafkaNative.rd_kafka_position(_rk, list);
            var partitions = (RdKafkaNative.TopicPartitionList*)list;
            for (int i = 0; i < partitions->Count; i++)
            {
                var element = (RdKafkaNative.TopicPartition*)((byte*)partitions->Elements + i * RdKafkaNative.TopicPartitionSize);
                if (RdKafkaNative.rd_kafka_get_watermark_offsets(_rk, element->Topic, element->Partition, out _, out long high) == 0
                    && high >= 0 && element->Offset >= 0)
                {
                    long behind = Math.Max(0, high - element->Offset);
                    lag += behind;
                    _settings.PartitionLag?.Invoke(element->Partition, behind);
                }
            }
        }
        finally
        {
            RdKafkaNative.rd_kafka_topic_partition_list_destroy(list);
        }
        return lag;
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
            FlushAndCommit(ShutdownDeadLetterWaitMs);
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
            _deadLetters?.Flush(TimeSpan.FromSeconds(5));
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

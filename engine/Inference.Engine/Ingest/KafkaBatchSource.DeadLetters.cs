using System.Runtime.InteropServices;
using System.Text;
using Confluent.Kafka;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;

namespace Inference.Engine.Ingest;

/// <summary>The batch source's malformed messages: set aside on the dead-letter topic, and whether those set aside are durable.</summary>
internal sealed unsafe partial class KafkaBatchSource<TSink>
    where TSink : class, IBatchSink
{
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
        long started = _time.GetTimestamp();
        long nextWarning = Deadline.After(_time, DeadLetterWarningMs);
        while (true)
        {
            while (_deadLetterRetries.TryDequeue(out var letter))
            {
                ProduceDeadLetter(letter);
            }
            _deadLetters.Flush(TimeSpan.FromMilliseconds(DeadLetterFlushPollMs));
            if (DeadLettersWritten == DeadLettersProduced)
            {
                return true;
            }
            if (giveUpAfterMs != Timeout.Infinite && _time.GetElapsedTime(started).TotalMilliseconds > giveUpAfterMs)
            {
                return false;
            }
            if (_time.GetTimestamp() >= nextWarning)
            {
                IngestLog.DeadLettersHeld(_logger, _settings.DeadLetterTopic, DeadLettersProduced - DeadLettersWritten);
                nextWarning = Deadline.After(_time, DeadLetterWarningMs);
            }
        }
    }
}

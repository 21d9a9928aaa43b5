using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Kernels.Features;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Ingest;

/// <summary>
/// Events that came from another partition than the engine's partitioner (Kafka's default: murmur2 of
/// the entity's UTF-8 bytes, as the Java client and librdkafka's <c>murmur2_random</c> partition keyed
/// records) gives their entity. A pool routes Score and GetFeatures rows by that partitioner, so such an
/// entity's state sits on a worker that is never asked: each is counted
/// (<c>inference.ingest.misrouted</c>), the first of each partition is logged with the fix, and in a
/// pool readiness says so while any arrived within <see cref="ReadyWindowMs"/>.
/// </summary>
internal sealed class MisroutedEvents(KafkaConnection kafka, IngestMetrics metrics, TimeProvider time, ILogger<MisroutedEvents> logger)
{
    /// <summary>How long after the last misrouted event readiness still reports it.</summary>
    public const int ReadyWindowMs = 60_000;

    private const int PartitionCountRetryMs = 5_000;

    // Per partition: when a misrouted event last came (0: never), its metric tag, and the events counted on
    // the consumer's thread since the last Publish (a tagged counter costs a lookup: once a batch, not a message).
    private long[] _lastSeen = [];
    private string[] _tags = [];
    private int[] _pending = [];
    private int _partitions;
    private long _nextLookup;

    /// <summary>Learns the events topic's partition count before consumption starts (not mid-batch on the consumer's thread).</summary>
    public void Prepare() => Known();

    /// <summary>Checks the entities decoded from one message of <paramref name="partition"/> (the consumer's thread).</summary>
    public void Check(int partition, ReadOnlySpan<ulong> entities)
    {
        if (entities.IsEmpty || !Known())
        {
            return;
        }
        int misrouted = 0;
        foreach (ulong entity in entities)
        {
            if (EntityKey.PartitionOf(entity, _partitions) != partition)
            {
                misrouted++;
            }
        }
        if (misrouted == 0)
        {
            return;
        }
        if ((uint)partition >= (uint)_pending.Length)
        {
            return;
        }
        _pending[partition] += misrouted;
    }

    /// <summary>Counts and stamps what <see cref="Check"/> found since the last call (the consumer's thread, as a batch closes).</summary>
    public void Publish()
    {
        long now = time.GetTimestamp();
        for (int partition = 0; partition < _pending.Length; partition++)
        {
            int misrouted = _pending[partition];
            if (misrouted == 0)
            {
                continue;
            }
            _pending[partition] = 0;
            metrics.Misrouted(_tags[partition], misrouted);
            if (Interlocked.Exchange(ref _lastSeen[partition], now) == 0)
            {
                IngestLog.Misrouted(logger, kafka.Options.EventsTopic, partition, _partitions);
            }
        }
    }

    /// <summary>What readiness reports: the partitions that had misrouted events within the window; null when none.</summary>
    public string? Problem()
    {
        long since = time.GetTimestamp() - ReadyWindowMs * time.TimestampFrequency / 1000;
        var seen = Volatile.Read(ref _lastSeen);
        var recent = Enumerable.Range(0, seen.Length).Where(p => Volatile.Read(ref seen[p]) is long at && at != 0 && at >= since).ToList();
        return recent.Count == 0 ? null
            : $"{metrics.MisroutedEvents} events came from other partitions than their entity's (partitions {string.Join(", ", recent)} of {kafka.Options.EventsTopic}): "
              + "the producer must partition keyed by entity with Kafka's default murmur2 partitioner (librdkafka: partitioner=murmur2_random)";
    }

    private bool Known()
    {
        if (_partitions > 0)
        {
            return true;
        }
        if (time.GetTimestamp() < _nextLookup)
        {
            return false;
        }
        _nextLookup = Deadline.After(time, PartitionCountRetryMs);
        try
        {
            int partitions = kafka.PartitionCount(kafka.Options.EventsTopic) ?? 0;
            if (partitions > 0)
            {
                _tags = [.. Enumerable.Range(0, partitions).Select(p => p.ToString(System.Globalization.CultureInfo.InvariantCulture))];
                _pending = new int[partitions];
                Volatile.Write(ref _lastSeen, new long[partitions]);
                _partitions = partitions;
            }
        }
        catch (Confluent.Kafka.KafkaException)
        {
            // Not known yet: looked up again later; nothing is counted meanwhile.
        }
        return _partitions > 0;
    }
}

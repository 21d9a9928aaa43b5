using System.Text;
using System.Text.Json;
using Confluent.Kafka;

namespace Inference.Engine.Outputs;

/// <summary>Stream scoring: where scoring stands, read from the progress topic at start and when partitions arrive.</summary>
internal sealed partial class StreamScorer
{
    /// <summary>
    /// Whether the broker hides aborted transactions from read_committed readers (a real cluster does;
    /// the embedded one does not), found by trying: a probe record in a transaction that is aborted,
    /// then looked for. Only then is read_committed trusted to say which progress records committed.
    /// </summary>
    private bool FiltersAbortedTransactions(IProducer<Null, Null> producer, TimeSpan timeout)
    {
        var config = _kafka.ConsumerConfig($"{_transactionalId}-progress-reader");
        long from = ProgressTopic.End(config, _options.ProgressTopic, timeout);
        byte[] probe = Encoding.UTF8.GetBytes($"{{\"probe\":\"{Guid.NewGuid():N}\",\"transactionalId\":\"{JsonEncodedText.Encode(_transactionalId)}\"}}");
        producer.BeginTransaction();
        _records!.Produce(_options.ProgressTopic, _producerValue, probe, new(ProducerHeader, _producerValue), default, default, default, partition: 0);
        // Delivered before the abort (an abort may drop what was never sent, which would prove nothing).
        if (producer.Flush(timeout) > 0)
        {
            throw new TimeoutException($"the probe record to the progress topic '{_options.ProgressTopic}' was not delivered within {timeout.TotalSeconds:0} s");
        }
        producer.AbortTransaction(timeout);
        return !ProgressTopic.IsVisibleCommitted(_time, _kafka.ConsumerConfig($"{_transactionalId}-progress-reader"), _options.ProgressTopic, from, probe, timeout);
    }

    /// <summary>The progress topic's records: those of committed transactions only where the broker filters, else all.</summary>
    private List<(long Offset, ProgressRecord Record)> ReadProgress() =>
        ProgressTopic.ReadAll(_time, _kafka.ConsumerConfig($"{_transactionalId}-progress-reader"), _options.ProgressTopic, TimeSpan.FromMilliseconds(_options.ProgressReadTimeoutMs),
            readCommitted: _filtersAborted);

    /// <summary>The progress a record proves committed: its own where the broker filters aborted transactions, else its base's.</summary>
    private IReadOnlyDictionary<int, ScoredPosition> CommittedBy(ProgressRecord record) => _filtersAborted ? record.Progress : record.Committed;

    /// <summary>Takes, at start, the committed progress and the next generation from the progress topic's records.</summary>
    private void Resume(List<(long Offset, ProgressRecord Record)> records)
    {
        var own = Newest(records, _transactionalId);
        _generation = 1;
        if (own is not null)
        {
            // Without a broker that filters aborted transactions, the newest record's base is the last
            // transaction known committed; the record itself may be of one that aborted, or that committed
            // unseen: its events are scored again (and the next record names the base, not it). Where the
            // broker filters, read_committed shows only committed records: the newest one is the base.
            _generation = own.Name.Generation + 1;
            _base = _filtersAborted ? own.Name : own.Base;
            _committed = new Dictionary<int, ScoredPosition>(CommittedBy(own));
        }
        _known = [.. _committed.Keys];
        if (_ownership is not null)
        {
            _ownershipVersion = _ownership.Version;
            TakeOver(records, _ownership.Owned);
        }
    }

    /// <summary>The newest record of <paramref name="transactionalId"/> over this events topic, or null.</summary>
    private ProgressRecord? Newest(List<(long Offset, ProgressRecord Record)> records, string transactionalId)
    {
        for (int i = records.Count - 1; i >= 0; i--)
        {
            var record = records[i].Record;
            if (record.TransactionalId == transactionalId && record.Topic == _eventsTopic)
            {
                return record;
            }
        }
        return null;
    }

    /// <summary>
    /// A pool worker that gains partitions goes on from the furthest committed progress any producer
    /// recorded for them (the partition's previous owners'), so their events are neither scored twice nor skipped.
    /// </summary>
    private void TakeOver(List<(long Offset, ProgressRecord Record)> records, IReadOnlyList<int> owned)
    {
        var arriving = owned.Where(p => !_known.Contains(p)).ToList();
        _known = [.. owned];
        if (arriving.Count == 0)
        {
            return;
        }
        var producers = records.Where(r => r.Record.Topic == _eventsTopic).Select(r => r.Record.TransactionalId).Distinct().ToList();
        foreach (string id in producers)
        {
            var newest = Newest(records, id)!;
            foreach (int partition in arriving)
            {
                if (CommittedBy(newest).TryGetValue(partition, out var at) && (!_committed.TryGetValue(partition, out var mine) || at.CompareTo(mine) > 0))
                {
                    _committed[partition] = at;
                }
            }
        }
        OutputsLog.TookOver(_logger, string.Join(", ", arriving), Describe(_committed, _base));
    }

    /// <summary>Before a transaction: a worker whose partitions changed reads where their scoring stands.</summary>
    private void FollowOwnership()
    {
        if (_ownership is null || _ownership.Version == _ownershipVersion)
        {
            return;
        }
        _ownershipVersion = _ownership.Version;
        var owned = _ownership.Owned;
        if (owned.All(_known.Contains))
        {
            _known = [.. owned];
            return;
        }
        TakeOver(ReadProgress(), owned);
    }
}

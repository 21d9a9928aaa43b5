using Confluent.Kafka;

namespace Inference.Engine.Ingest;

/// <summary>The batch source's rebalances: partitions arriving (resume, handoff, catch-up marks), leaving and lost; the catch-up at start.</summary>
internal sealed unsafe partial class KafkaBatchSource<TSink>
    where TSink : class, IBatchSink
{
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
            // (the checkpoint is the truth; the committed offset may be older). In a pool, a partition taken
            // up starts after the newest position a worker's checkpoint holds (its last owner's hand-over).
            // Otherwise the committed one.
            long next = _resume.Remove(partition.Partition.Value, out long last) ? last + 1
                : _settings.ArrivingFrom?.Invoke(partition.Partition.Value) is long read ? read + 1
                : Offset.Unset;
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
            long end = _consumer.QueryWatermarkOffsets(partition, TimeSpan.FromMilliseconds(_kafka.AssignmentQueryTimeoutMs)).High.Value - 1;
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
        var committed = _consumer.Committed(assigned, TimeSpan.FromMilliseconds(_kafka.MetadataTimeoutMs));
        foreach (var partition in assigned)
        {
            // Nothing to read past the committed offset: no target. (What a restored checkpoint holds is
            // already held, so a partition it covers to the end is caught up as it is.)
            var ends = _consumer.QueryWatermarkOffsets(partition, TimeSpan.FromMilliseconds(_kafka.MetadataTimeoutMs));
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
    /// Follow mode: takes up the owned partitions' numbers now if they changed (a trainer does so before its state
    /// is captured for a checkpoint: the state then holds every label of a partition leaving, and none after).
    /// </summary>
    public void FollowOwnership()
    {
        if (_settings.Follows is { } ownership)
        {
            Follow(ownership);
        }
    }

    /// <summary>
    /// Follow mode: takes up the owned partitions' numbers when they changed. Partitions no longer owned are
    /// applied and committed, then dropped; new ones start where the checkpoint or the committed offset says.
    /// </summary>
    private void Follow(IOwnedPartitions ownership)
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
}

using System.Globalization;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Google.Protobuf;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Proto.V1;

namespace Inference.Engine.Outputs;

/// <summary>Stream scoring: one transaction of score records, alerts and its progress record.</summary>
internal sealed partial class StreamScorer
{
    /// <summary>One transaction over <paramref name="items"/> (none: it only names the last one), retried until it commits; false when it never can.</summary>
    private bool Commit(IProducer<Null, Null> producer, List<ScoredBatch> items)
    {
        var records = _records!;
        while (true)
        {
            try
            {
                FollowOwnership();
            }
            catch (TimeoutException error)
            {
                return Stop(error.Message);
            }
            // Every attempt is a transaction of its own: an aborted one's records never share its name.
            var name = new TransactionName(_generation, ++_sequence);
            byte[] transaction = Encoding.ASCII.GetBytes(name.ToString());
            var progress = new Dictionary<int, ScoredPosition>(_committed);
            var alerts = new List<(string Id, string Json)>();
            int scored = 0;
            int replayed = 0;
            try
            {
                producer.BeginTransaction();
                long version = ScoreAll(items);
                int first = 0;
                foreach (var item in items)
                {
                    (int s, int r) = Produce(records, item, _scores.AsSpan(first, item.Rows), version, progress, alerts, transaction);
                    first += item.Rows;
                    scored += s;
                    replayed += r;
                }
                _progressBuffer.ResetWrittenCount();
                new ProgressRecord(_transactionalId, _eventsTopic, name, _base, scored, _committed, progress).WriteTo(_progressBuffer);
                // Always partition 0: a restart reads the progress from there, whatever the topic's partition count.
                records.Produce(_options.ProgressTopic, _producerValue, _progressBuffer.WrittenSpan,
                    new(ProducerHeader, _producerValue), new(TransactionHeader, transaction), new(ContentTypeHeader, JsonContentType), default, partition: 0);
                producer.CommitTransaction(TimeSpan.FromMilliseconds(_options.CommitTimeoutMs));
            }
            catch (KafkaException error) when (!IsFatal(error))
            {
                _metrics.Failure();
                OutputsLog.Retrying(_logger, name.ToString(), error.Message);
                try
                {
                    producer.AbortTransaction(TimeSpan.FromMilliseconds(_options.CommitTimeoutMs));
                }
                catch (KafkaException abort) when (!IsFatal(abort))
                {
                    // The next BeginTransaction says whether the producer can go on.
                }
                catch (KafkaException abort)
                {
                    return Stop(abort.Message);
                }
                // Not cut short by a stop: a graceful stop still commits what was applied before it.
                Deadline.Sleep(_time, RetryDelayMs, CancellationToken.None);
                continue;
            }
            catch (KafkaException error)
            {
                return Stop(error.Message);
            }
            _committed = progress;
            _base = name;
            long now = _time.GetUtcNow().ToUnixTimeMilliseconds();
            foreach (var item in items)
            {
                foreach (long timestamp in item.TimestampsMs)
                {
                    if (timestamp > 0)
                    {
                        _metrics.Latency(Math.Max(0, now - timestamp) / 1e3);
                    }
                }
            }
            _metrics.Committed(scored, replayed);
            // This transaction's record names the one before it: that one is now known committed.
            Interlocked.Add(ref _confirmed, _unconfirmed);
            _unconfirmed = items.Count;
            Interlocked.Add(ref _produced, items.Count);
            _room.Release();
            _hub.Publish(alerts);
            return true;
        }
    }

    private bool Stop(string reason)
    {
        OutputsLog.Fatal(_logger, reason);
        _lifetime.StopApplication();
        return false;
    }

    private static bool IsFatal(KafkaException error) =>
        error.Error.IsFatal || error.Error.Code is ErrorCode.ProducerFenced or ErrorCode.InvalidProducerEpoch or ErrorCode.TransactionalIdAuthorizationFailed;

    /// <summary>
    /// Scores every row of a transaction's batches in one forward pass (a pass costs tens of
    /// microseconds whatever its size: per batch it would be most of the scorer's time when batches
    /// are small), into <see cref="_scores"/>; returns the model version that scored them.
    /// </summary>
    private long ScoreAll(List<ScoredBatch> items)
    {
        int rows = 0;
        foreach (var item in items)
        {
            rows += item.Rows;
        }
        if (_scores.Length < rows)
        {
            _scores = new float[Math.Max(rows, _scores.Length * 2)];
        }
        float[] inputs;
        float[]? embeddings = null;
        int embeddingWidth = _embeddings?.Width ?? 0;
        if (items.Count == 1)
        {
            inputs = items[0].Features;
            embeddings = _embeddings is null ? null : items[0].Embeddings;
        }
        else
        {
            if (_inputs.Length < rows * _width)
            {
                _inputs = new float[Math.Max(rows * _width, _inputs.Length * 2)];
            }
            if (_embeddings is not null && _embeddingInputs.Length < rows * embeddingWidth)
            {
                _embeddingInputs = new float[Math.Max(rows * embeddingWidth, _embeddingInputs.Length * 2)];
            }
            int at = 0, embeddingsAt = 0;
            foreach (var item in items)
            {
                item.Features.AsSpan(0, item.Rows * _width).CopyTo(_inputs.AsSpan(at));
                at += item.Rows * _width;
                if (_embeddings is not null)
                {
                    item.Embeddings.AsSpan(0, item.Rows * embeddingWidth).CopyTo(_embeddingInputs.AsSpan(embeddingsAt));
                    embeddingsAt += item.Rows * embeddingWidth;
                }
            }
            inputs = _inputs;
            embeddings = _embeddings is null ? null : _embeddingInputs;
        }
        using var lease = _registry.Acquire();
        if (rows > 0)
        {
            lease.Snapshot.Score(inputs, embeddings, rows, _scores);
            _log?.Served(Requests(items, rows), inputs.AsSpan(0, rows * _width), Ids(items, rows), _scores.AsSpan(0, rows), lease.Snapshot.Version);
        }
        return lease.Snapshot.Version;
    }

    /// <summary>
    /// The feature log's key of each scored event: the hash of its event id, <c>topic/partition/offset/index</c> (its
    /// source on the scores topic, <see cref="Inference.Client.ScoredEvents"/>); a label naming it as its
    /// <c>request_id</c> learns from what was scored.
    /// </summary>
    private static ulong[] Requests(List<ScoredBatch> items, int rows)
    {
        var requests = new ulong[rows];
        int at = 0;
        foreach (var item in items)
        {
            for (int i = 0; i < item.Rows; i++)
            {
                requests[at++] = Kernels.Features.EntityKey.Hash(Client.ScoredEvents.RequestId(item.Topic, item.Partitions[i], item.Offsets[i], item.Indexes[i]));
            }
        }
        return requests;
    }

    /// <summary>A model over ids: every row's ids as scored, in order; else empty.</summary>
    private static ulong[] Ids(List<ScoredBatch> items, int rows) =>
        items.Count == 1 ? items[0].Ids : [.. items.SelectMany(i => i.Ids)];

    /// <summary>Scores one applied batch's selected events and produces their records and alerts; returns (scored, replayed).</summary>
    private (int Scored, int Replayed) Produce(RecordProducer records, ScoredBatch item, ReadOnlySpan<float> scores, long version, Dictionary<int, ScoredPosition> progress,
        List<(string, string)> alerts, byte[] transaction)
    {
        int rows = item.Rows;
        // The applied offset of each partition in the state the batch was scored from, looked up by partition.
        var partitions = item.Watermark.Partitions;
        int highest = -1;
        foreach (var offset in partitions)
        {
            if (offset.Topic == item.Topic)
            {
                highest = Math.Max(highest, offset.Partition);
            }
        }
        var applied = new long[highest + 1];
        foreach (var offset in partitions)
        {
            if (offset.Topic == item.Topic)
            {
                applied[offset.Partition] = offset.Offset;
            }
        }
        byte[] watermark = _options.IncludeWatermark ? _encoder.EncodeWatermark(item.Watermark.Message) : [];
        var contentType = _options.Format == OutputFormat.Protobuf ? ScoredContentType : JsonContentType;
        int scored = 0;
        int replayed = 0;
        for (int i = 0; i < rows; i++)
        {
            int partition = item.Partitions[i];
            var at = new ScoredPosition(item.Offsets[i], item.Indexes[i]);
            if (progress.TryGetValue(partition, out var done) && at.CompareTo(done) <= 0)
            {
                replayed++;
                continue;
            }
            progress[partition] = at;
            var features = _options.IncludeFeatures ? item.Features.AsSpan(i * _width, _width) : [];
            var entity = item.Entity(i);
            long appliedOffset = partition < applied.Length ? applied[partition] : item.Offsets[i];
            var value = _encoder.Encode(entity, partition, item.Offsets[i], item.Indexes[i], scores[i], version, item.EventTimesMs[i], appliedOffset, watermark, features);
            records.Produce(_options.Topic, entity, value, new(ProducerHeader, _producerValue), new(TransactionHeader, transaction), new(ContentTypeHeader, contentType), default);
            scored++;
            foreach (var (rule, feature) in _rules)
            {
                if (Matches(rule, feature, scores[i], item, i))
                {
                    ProduceAlert(records, rule, item, i, scores[i], version, appliedOffset, transaction, alerts);
                }
            }
        }
        // Everything the batch covers is done, scored or not selected.
        foreach (var offset in partitions)
        {
            if (offset.Topic == item.Topic && (!progress.TryGetValue(offset.Partition, out var done) || ScoredPosition.Through(offset.Offset).CompareTo(done) > 0))
            {
                progress[offset.Partition] = ScoredPosition.Through(offset.Offset);
            }
        }
        return (scored, replayed);
    }

    /// <summary>An alert (rare): its message built whole, with the scored event as the scores topic has it.</summary>
    private void ProduceAlert(RecordProducer records, AlertRule rule, ScoredBatch item, int i, float score, long version, long appliedOffset, byte[] transaction,
        List<(string, string)> alerts)
    {
        var e = new ScoredEvent
        {
            Entity = Encoding.UTF8.GetString(item.Entity(i)),
            Source = new EventSource { Topic = item.Topic, Partition = item.Partitions[i], Offset = item.Offsets[i], Index = item.Indexes[i] },
            Score = score,
            ModelVersion = version,
            EventTimeMs = item.EventTimesMs[i],
            AppliedOffset = appliedOffset,
        };
        if (_options.IncludeFeatures)
        {
            e.Features.Add(item.Features.AsSpan(i * _width, _width).ToArray());
        }
        string id = string.Create(CultureInfo.InvariantCulture, $"{rule.Name}/{item.Topic}/{item.Partitions[i]}/{item.Offsets[i]}/{item.Indexes[i]}");
        var alert = new Alert { Id = id, Rule = rule.Name, Event = e };
        bool protobuf = _options.Format == OutputFormat.Protobuf;
        byte[] value = protobuf ? alert.ToByteArray() : Encoding.UTF8.GetBytes(JsonFormatter.Default.Format(alert));
        records.Produce(_alerts.Topic, item.Entity(i), value, new(ProducerHeader, _producerValue), new(TransactionHeader, transaction),
            new(ContentTypeHeader, protobuf ? AlertContentType : JsonContentType), default);
        alerts.Add((id, FlatJson(alert)));
        _metrics.Alert(rule.Name);
    }

    private bool Matches(AlertRule rule, int feature, float score, ScoredBatch item, int row) =>
        (rule.ScoreAbove is not { } above || score > above)
        && (feature < 0 || rule.FeatureAbove is not { } threshold || item.Raw[row * _width + feature] > threshold);

    /// <summary>The alert as browsers and the dashboard read it: flat, numbers as numbers.</summary>
    internal static string FlatJson(Alert alert)
    {
        var e = alert.Event;
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("id", alert.Id);
            json.WriteString("rule", alert.Rule);
            json.WriteString("entity", e.Entity);
            json.WriteNumber("score", e.Score);
            json.WriteNumber("modelVersion", e.ModelVersion);
            json.WriteNumber("eventTimeMs", e.EventTimeMs);
            json.WriteString("source", string.Create(CultureInfo.InvariantCulture, $"{e.Source.Topic}/{e.Source.Partition}@{e.Source.Offset}"));
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}

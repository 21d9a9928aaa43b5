using System.Text;
using Google.Protobuf;
using Inference.Engine.Outputs;
using Inference.Proto.V1;

namespace Inference.Engine.Tests;

/// <summary>The scored-event and alert messages round-trip through their JSON as the topics carry them.</summary>
public sealed class OutputRecordTests
{
    [Fact]
    public void An_alert_reads_back_from_its_topic_JSON_and_flattens_for_browsers()
    {
        var alert = new Alert
        {
            Id = "high/events/3/42/0",
            Rule = "high",
            Event = new ScoredEvent { Entity = "user-1", Score = 0.95f, ModelVersion = 7, EventTimeMs = 1_767_225_600_000, Source = new EventSource { Topic = "events", Partition = 3, Offset = 42 } },
        };
        var back = Alert.Parser.ParseJson(JsonFormatter.Default.Format(alert));
        Assert.Equal(alert, back);
        Assert.Equal("""{"id":"high/events/3/42/0","rule":"high","entity":"user-1","score":0.95,"modelVersion":7,"eventTimeMs":1767225600000,"source":"events/3@42"}""",
            StreamScorer.FlatJson(alert));
    }
}

/// <summary>The record encoder writes what the generated ScoredEvent parser reads back, in both formats.</summary>
public sealed class ScoreRecordEncoderTests
{
    [Theory]
    [InlineData(OutputFormat.Json)]
    [InlineData(OutputFormat.Protobuf)]
    public void A_record_reads_back_as_the_ScoredEvent_it_encodes(OutputFormat format)
    {
        var encoder = new ScoreRecordEncoder(format, "events");
        var watermark = new Proto.V1.FeatureWatermark { MaxEventTimeMs = 1_767_225_600_123, BatchesApplied = 9 };
        watermark.Partitions.Add(new PartitionWatermark { Topic = "events", Partition = 3, LastAppliedOffset = 77 });
        byte[] encodedWatermark = encoder.EncodeWatermark(watermark);
        var random = new Random(3);
        for (int trial = 0; trial < 200; trial++)
        {
            string entity = trial % 3 == 0 ? $"ü-\"quoted\"-{trial}" : $"user-{random.Next()}";
            int partition = random.Next(512);
            long offset = trial % 5 == 0 ? 0 : random.NextInt64(1L << 40);
            int index = trial % 4 == 0 ? 0 : random.Next(1_000);
            float score = (float)random.NextDouble();
            long version = random.Next(1_000_000);
            long eventTime = 1_767_225_600_000 - (trial % 7 == 0 ? 2_000_000_000_000 : 0) + random.Next();
            long applied = offset + random.Next(100);
            float[] features = trial % 2 == 0 ? [1.5f, -2.25f, float.Epsilon] : [];
            bool withWatermark = trial % 3 == 1;
            var bytes = encoder.Encode(Encoding.UTF8.GetBytes(entity), partition, offset, index, score, version, eventTime, applied,
                withWatermark ? encodedWatermark : [], features).ToArray();
            var back = format == OutputFormat.Protobuf ? ScoredEvent.Parser.ParseFrom(bytes) : ScoredEvent.Parser.ParseJson(Encoding.UTF8.GetString(bytes));
            var expected = new ScoredEvent
            {
                Entity = entity,
                Source = new EventSource { Topic = "events", Partition = partition, Offset = offset, Index = index },
                Score = score,
                ModelVersion = version,
                EventTimeMs = eventTime,
                AppliedOffset = applied,
                Watermark = withWatermark ? watermark : null,
            };
            expected.Features.Add(features);
            Assert.Equal(expected, back);
        }
    }

    [Fact]
    public void A_progress_record_reads_back_as_written()
    {
        var committed = new Dictionary<int, ScoredPosition> { [0] = new(10, 0), [5] = ScoredPosition.Through(99) };
        var progress = new Dictionary<int, ScoredPosition>(committed) { [5] = new(120, 3) };
        var record = new ProgressRecord("group-scores-w1", "events", new(4, 17), new(4, 15), 42, committed, progress);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        record.WriteTo(buffer);
        var back = ProgressRecord.Parse(buffer.WrittenSpan);
        Assert.NotNull(back);
        Assert.Equal((record.TransactionalId, record.Topic, record.Name, record.Base, record.Records), (back.TransactionalId, back.Topic, back.Name, back.Base, back.Records));
        Assert.Equal(committed, back.Committed);
        Assert.Equal(progress, back.Progress);
        Assert.Null(ProgressRecord.Parse("""{"probe":"abc","transactionalId":"x"}"""u8));
    }
}

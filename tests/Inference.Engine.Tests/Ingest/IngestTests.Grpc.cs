using System.Diagnostics;
using Grpc.Core;
using Inference.Demo;
using Inference.Engine.Features;
using Inference.Proto.V1;
using Inference.Testing;
using Event = Inference.Proto.V1.Event;

namespace Inference.Engine.Tests;

/// <summary>Events ingested over gRPC: acks per batch, rows refused by index, and Score that waits for what was written.</summary>
public sealed partial class IngestTests
{
    [Fact]
    public async Task Grpc_ingest_acks_every_batch_rejects_bad_rows_by_index_and_lands_as_the_oracle_says()
    {
        var settings = Settings();
        settings["Inference:Training:Enabled"] = "false";
        await using var engine = await EngineHarness.StartAsync(settings);
        var client = new IngestService.IngestServiceClient(engine.Channel);
        var stream = new SyntheticStream(entities: 1_000, seed: 11);
        var events = Enumerable.Range(0, 100_000).Select(_ => stream.NextEvent()).ToList();
        var batches = events.Chunk(500).ToList();

        using var call = client.Ingest();
        var acks = new List<IngestAck>();
        var reading = Task.Run(async () =>
        {
            await foreach (var ack in call.ResponseStream.ReadAllAsync())
            {
                acks.Add(ack);
            }
        });
        foreach (var chunk in batches)
        {
            var batch = new EventBatch();
            batch.Events.AddRange(chunk.Select(e => EventEncodings.Protobuf(stream, e)));
            await call.RequestStream.WriteAsync(batch);
        }
        // One batch with two bad rows among good ones: the good ones are taken.
        var mixed = new EventBatch();
        var extra = stream.NextEvent();
        mixed.Events.Add(new Event { Entity = "", Ts = 5, Values = { ["amount"] = 1 } });
        mixed.Events.Add(EventEncodings.Protobuf(stream, extra));
        mixed.Events.Add(new Event { Entity = "y", Ts = 5 });
        await call.RequestStream.WriteAsync(mixed);
        events.Add(extra);
        await call.RequestStream.CompleteAsync();
        await reading;

        Assert.Equal(batches.Count + 1, acks.Count);
        Assert.Equal(Enumerable.Range(0, batches.Count + 1).Select(i => (long)i), acks.Select(a => a.Sequence));
        Assert.All(acks.Take(batches.Count), a => Assert.Equal(500, a.Accepted));
        var last = acks[^1];
        Assert.Equal(1, last.Accepted);
        Assert.Equal([(0, "missing_entity"), (2, "missing_field")], last.Rejected.Select(r => (r.Index, r.Reason)));
        Assert.Equal(events.Count, acks.Sum(a => a.Accepted));

        await engine.WaitTakenAsync(new Taken(events.Count));
        AssertMatchesOracle(engine.Get<FeatureStore>(), stream, events);
    }

    [Fact]
    public async Task Score_with_the_acks_watermark_always_sees_the_event_just_ingested()
    {
        const int Rounds = 1_000;
        var settings = Settings();
        settings["Inference:Training:Enabled"] = "false";
        await using var engine = await EngineHarness.StartAsync(settings);
        var ingest = new IngestService.IngestServiceClient(engine.Channel);
        var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
        var store = engine.Get<FeatureStore>();
        using var call = ingest.Ingest();
        var latencies = new List<double>();
        int misses = 0;
        long time = FeatureSelfCheck.Start;
        for (int round = 0; round < Rounds; round++)
        {
            string entity = $"payer-{round}";
            var batch = new EventBatch { Events = { new Event { Entity = entity, Ts = ++time, Values = { ["amount"] = round } } } };
            await call.RequestStream.WriteAsync(batch);
            Assert.True(await call.ResponseStream.MoveNext());
            var ack = call.ResponseStream.Current;
            Assert.Equal(1, ack.Accepted);
            long started = Stopwatch.GetTimestamp();
            var response = await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = entity } }, MinWatermark = ack.Written },
                deadline: DateTime.UtcNow.AddSeconds(10));
            latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            foreach (var written in ack.Written.Partitions)
            {
                var applied = response.Watermark.Partitions.SingleOrDefault(p => p.Topic == written.Topic && p.Partition == written.Partition);
                if (applied is null || applied.LastAppliedOffset < written.LastAppliedOffset)
                {
                    misses++;
                }
            }
        }
        await call.RequestStream.CompleteAsync();
        // The responses' watermarks covered every event; the state agrees that each entity holds its one event.
        for (int round = 0; round < Rounds; round += 97)
        {
            Assert.Equal(1, store.Read($"payer-{round}")!["count"]);
        }
        latencies.Sort();
        output.WriteLine($"read-your-writes Score latency over {Rounds} rounds: p50 {latencies[Rounds / 2]:F2} ms, p99 {latencies[Rounds * 99 / 100]:F2} ms");
        Assert.Equal(0, misses);
    }

    [Fact]
    public async Task A_score_whose_watermark_is_never_reached_ends_at_its_deadline()
    {
        var settings = Settings();
        settings["Inference:Training:Enabled"] = "false";
        await using var engine = await EngineHarness.StartAsync(settings);
        var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
        var far = new Proto.V1.FeatureWatermark { Partitions = { new PartitionWatermark { Topic = "events", Partition = 0, LastAppliedOffset = 1_000_000 } } };
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
            await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "a" } }, MinWatermark = far }, deadline: DateTime.UtcNow.AddMilliseconds(300)));
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
    }
}

using Confluent.Kafka;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Proto.V1;
using Inference.Testing;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Tests;

/// <summary>Workers of one pool: one consumer group on the events topic, labels co-partitioned with it.</summary>
public sealed class PoolTests
{
    private const int Partitions = 4;

    private static Dictionary<string, string?> PoolWorker(EmbeddedKafka kafka, string parameterServer, string name)
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Role"] = "Worker";
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Kafka:GroupId"] = "pool";
        settings["Inference:Kafka:DeadLetterTopic"] = "";
        settings["Inference:Kafka:LabelsDeadLetterTopic"] = "";
        settings["Inference:Kafka:SessionTimeoutMs"] = "3000";
        settings["Inference:Training:BatchSize"] = "1";
        settings["Inference:Sync:ParameterServer"] = parameterServer;
        settings["Inference:Sync:WorkerId"] = name;
        return settings;
    }

    [Fact]
    public async Task Each_worker_learns_the_labels_of_the_partitions_it_owns_and_its_watermark_lists_only_those()
    {
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        kafka.CreateTopic("labels", Partitions);
        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps = await EngineHarness.StartAsync(psSettings);
        await using var a = await EngineHarness.StartAsync(PoolWorker(kafka, ps.Address, "a"));
        await using var b = await EngineHarness.StartAsync(PoolWorker(kafka, ps.Address, "b"));
        // A third member that serves but does not train: the events group has three members, and a labels
        // group of its own would have two, so only following the events assignment gives each trainer its own partitions' labels.
        var serving = PoolWorker(kafka, ps.Address, "c");
        serving["Inference:Training:Enabled"] = "false";
        await using var c = await EngineHarness.StartAsync(serving);
        var ownedA = a.Get<PartitionOwnership>();
        var ownedB = b.Get<PartitionOwnership>();
        var ownedC = c.Get<PartitionOwnership>();
        await EngineHarness.WaitUntil(() => ownedA.Owned.Count > 0 && ownedB.Owned.Count > 0 && ownedC.Owned.Count > 0 && ownedA.Owned.Count + ownedB.Owned.Count + ownedC.Owned.Count == Partitions,
            TimeSpan.FromSeconds(60), () => $"the group to split the {Partitions} partitions (a: {string.Join(",", ownedA.Owned)}; b: {string.Join(",", ownedB.Owned)}; c: {string.Join(",", ownedC.Owned)})");
        Assert.Empty(ownedA.Owned.Intersect(ownedB.Owned).Intersect(ownedC.Owned));

        // Events and labels keyed by entity with the same producer: a label lands in its entity's partition number.
        var stream = new SyntheticStream(entities: 60, seed: 8);
        var labelsPerPartition = new int[Partitions];
        var eventsPerPartition = new int[Partitions];
        using (var producer = EngineHarness.Producer(kafka.BootstrapServers))
        {
            var sent = new List<Task<DeliveryResult<string, byte[]>>>();
            for (int i = 0; i < 600; i++)
            {
                var e = stream.NextEvent();
                sent.Add(producer.ProduceAsync("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json }));
            }
            foreach (var result in await Task.WhenAll(sent))
            {
                eventsPerPartition[result.Partition.Value]++;
            }
            sent.Clear();
            for (int i = 0; i < 200; i++)
            {
                int entity = stream.NextEntity();
                sent.Add(producer.ProduceAsync("labels", new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json }));
            }
            foreach (var result in await Task.WhenAll(sent))
            {
                labelsPerPartition[result.Partition.Value]++;
            }
        }
        int expectA = ownedA.Owned.Sum(p => labelsPerPartition[p]);
        int expectB = ownedB.Owned.Sum(p => labelsPerPartition[p]);
        await EngineHarness.WaitUntil(() => a.Metrics.LabelsTrained == expectA && b.Metrics.LabelsTrained == expectB, TimeSpan.FromSeconds(60),
            () => $"each worker to learn its partitions' labels (a {a.Metrics.LabelsTrained} of {expectA}, b {b.Metrics.LabelsTrained} of {expectB})");
        await EngineHarness.WaitUntil(() => a.Metrics.EventsApplied == ownedA.Owned.Sum(p => eventsPerPartition[p]) && b.Metrics.EventsApplied == ownedB.Owned.Sum(p => eventsPerPartition[p]),
            TimeSpan.FromSeconds(60), () => "each worker to apply its partitions' events");
        await Task.Delay(1_000);
        Assert.Equal(expectA, a.Metrics.LabelsTrained);
        Assert.Equal(expectB, b.Metrics.LabelsTrained);
        Assert.True(expectA + expectB < 200, "the serving-only member's partitions hold labels nobody else learns");

        foreach (var (worker, owned) in new[] { (a, ownedA), (b, ownedB), (c, ownedC) })
        {
            var response = await new ScoringService.ScoringServiceClient(worker.Channel).ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = stream.Key(0) } } });
            Assert.Equal(owned.Owned, response.Watermark.Partitions.Where(p => p.Topic == "events").Select(p => p.Partition).Order());
        }
    }

    [Fact]
    public async Task A_worker_whose_labels_are_not_co_partitioned_with_its_events_does_not_start()
    {
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", Partitions);
        kafka.CreateTopic("labels", Partitions - 1);
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(PoolWorker(kafka, "http://127.0.0.1:1", "a")));
        Assert.Contains("Inference:Kafka:LabelsTopic", error.Message);
        Assert.Contains("co-partitioned", error.Message);
    }
}

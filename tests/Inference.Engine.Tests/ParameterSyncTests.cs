using Confluent.Kafka;
using Inference.Engine.Kafka;
using Inference.Testing;
using Inference.Engine.Sync;
using Inference.Models.Registry;

namespace Inference.Engine.Tests;

/// <summary>Two workers and one parameter server, each a real host on its own loopback port.</summary>
public sealed class ParameterSyncTests
{
    [Fact]
    public async Task After_a_sync_both_workers_hold_the_servers_parameters()
    {
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels-a", "labels-b" })
        {
            kafka.CreateTopic(topic, 2);
        }

        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps = await EngineHarness.StartAsync(psSettings);

        async Task<EngineHarness> Worker(string name)
        {
            var settings = EngineHarness.BaseSettings();
            settings["Inference:Role"] = "Worker";
            settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
            settings["Inference:Kafka:GroupId"] = name;
            settings["Inference:Kafka:LabelsTopic"] = $"labels-{name}";
            settings["Inference:Kafka:DeadLetterTopic"] = "";
            settings["Inference:Sync:ParameterServer"] = ps.Address;
            settings["Inference:Sync:WorkerId"] = name;
            settings["Inference:Training:BatchSize"] = "16";
            return await EngineHarness.StartAsync(settings);
        }

        await using var a = await Worker("a");
        await using var b = await Worker("b");
        var shard = ps.Get<ParameterShard>();

        // Both workers learn from different labels, so each pushes its own deltas.
        var stream = new SyntheticStream(entities: 50, seed: 99);
        using (var producer = EngineHarness.Producer(kafka.BootstrapServers))
        {
            for (int i = 0; i < 2_000; i++)
            {
                var e = stream.NextEvent();
                producer.Produce("events", new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json });
            }
            for (int i = 0; i < 400; i++)
            {
                int entity = stream.NextEntity();
                producer.Produce(i % 2 == 0 ? "labels-a" : "labels-b", new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json });
            }
            producer.Flush(TimeSpan.FromSeconds(30));
        }
        await EngineHarness.WaitUntil(() => a.Metrics.LabelsTrained == 200 && b.Metrics.LabelsTrained == 200, TimeSpan.FromSeconds(60),
            () => $"200 labels trained by each worker (a {a.Metrics.LabelsTrained}, b {b.Metrics.LabelsTrained})");

        // Once both have pushed what they learned and pulled again, each holds exactly the shard's parameters.
        var registryA = a.Get<ModelRegistry>();
        var registryB = b.Get<ModelRegistry>();
        await EngineHarness.WaitUntil(() =>
            {
                var (_, merged) = shard.Current;
                return merged is not null
                    && registryA.CurrentParameters().ApproximatelyEquals(merged)
                    && registryB.CurrentParameters().ApproximatelyEquals(merged);
            },
            TimeSpan.FromSeconds(30), () => "both workers' published parameters to equal the parameter server's");

        var (version, parameters) = shard.Current;
        Assert.True(version > 2, $"shard version {version}: expected the initial version plus pushes from both workers");
        Assert.True(a.Metrics.SyncRounds > 0 && b.Metrics.SyncRounds > 0);
        // The merged model is not the initial one: the workers' learning reached it.
        using var initial = new ModelRegistry(registryA.Spec);
        Assert.False(initial.CurrentParameters().ApproximatelyEquals(parameters!, 1e-4f));
    }
}

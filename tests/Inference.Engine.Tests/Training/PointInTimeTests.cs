using System.Collections.Concurrent;
using System.Globalization;
using Inference.Engine.Training;
using Inference.Kernels.Features;
using Inference.Testing;

namespace Inference.Engine.Tests;

/// <summary>
/// Labels that name no request learn from their entity's state as of the label's time: every feature, running
/// aggregates included, computed by a plain oracle over the entity's events at or before that time. The stream
/// is skewed (one entity holds a third of the events), its times out of order with many ties, and every entity
/// has events after most of its labels when they are learned.
/// </summary>
public sealed class PointInTimeTests
{
    [Fact]
    public async Task Labels_without_a_request_learn_from_the_state_at_their_time_as_an_oracle_over_the_events_before_it_says()
    {
        using var kafka = IdModelTests.Kafka();
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Training:BatchSize"] = "32";
        settings["Inference:Model:RequestFeatures"] = "1";
        EngineHarness.Declare(settings,
            ("count", "Count", null, null),
            ("spent", "Sum", "amount", null),
            ("average", "Mean", "amount", null),
            ("smallest", "Min", "amount", null),
            ("largest", "Max", "amount", null),
            ("latest", "Last", "amount", null),
            ("idle", "TimeSinceLast", null, null),
            ("recent", "WindowSum", "amount", "HorizonMs=24000"));
        await using var engine = await EngineHarness.StartAsync(settings);
        var log = engine.Get<FeatureLog>();
        var plan = engine.Get<Features.FeatureStore>().Plan;
        int width = plan.Count;
        // Each label carries its index as its one request feature: what it learned from, by label.
        var learned = new ConcurrentDictionary<int, float[]>();
        log.Learned = (requests, inputs) =>
        {
            for (int r = 0; r < requests.Length; r++)
            {
                var row = inputs.Slice(r * log.Width, log.Width);
                learned[(int)row[width]] = row[..width].ToArray();
            }
        };

        const int Entities = 30;
        const long Start = 1_767_225_600_000;
        var random = new Random(8);
        int Entity() => random.NextDouble() < 1.0 / 3 ? 0 : random.Next(Entities);
        var events = Enumerable.Range(0, 3_000).Select(_ => (Entity: Entity(), Time: Start + 100 * random.Next(1_000), Amount: random.Next(1, 500))).ToList();
        await engine.ProduceAndWaitAsync("events", events.Select(e => Streams.Json($"user-{e.Entity}",
            string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"user-{e.Entity}\",\"ts\":{e.Time},\"amount\":{e.Amount}}}"))), new Taken(3_000));

        // Labels from before the first event to after the last, most with events of their entity after them.
        var labels = Enumerable.Range(0, 640).Select(i => (Entity: Entity(), Time: Start - 5_000 + 50 * random.Next(2_200))).ToList();
        await engine.ProduceAndWaitAsync("labels", labels.Select((l, i) => Streams.Json($"user-{l.Entity}",
            string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"user-{l.Entity}\",\"ts\":{l.Time},\"label\":{i % 2},\"request_features\":[{i}]}}"))),
            new Taken(3_000, Labels: 640), TimeSpan.FromSeconds(60));

        var metrics = engine.Get<TrainingMetrics>();
        Assert.Equal(640, learned.Count);
        int after = 0;
        for (int i = 0; i < labels.Count; i++)
        {
            var (entity, time) = labels[i];
            var before = events.Where(e => e.Entity == entity && e.Time <= time).ToList();
            after += events.Any(e => e.Entity == entity && e.Time > time) ? 1 : 0;
            var oracle = new FeatureOracle(plan);
            ulong key = EntityKey.Hash($"user-{entity}");
            oracle.Apply([.. before.Select(_ => key)], [.. before.Select(e => e.Time)], [[.. before.Select(e => (float)e.Amount)]], []);
            for (int f = 0; f < width; f++)
            {
                double value = oracle.Value(key, f, time);
                double expected = value >= 0 ? Math.Log(1 + value) : -Math.Log(1 - value);
                Assert.True(Math.Abs(learned[i][f] - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)),
                    $"label {i} (user-{entity} at {time}, {before.Count} events before it): {plan.Definitions[f].Name} learned {learned[i][f]}, the oracle says {expected}");
            }
        }
        Assert.True(after > 400, $"only {after} labels had events of their entity after them");
        Assert.Equal(after, metrics.PointInTimeReplayedLabels);
        Assert.Equal(0, metrics.PointInTimeInexactLabels);
    }
}

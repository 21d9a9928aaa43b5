using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Xunit.Abstractions;

namespace Inference.Acceptance.Tests;

/// <summary>The Kafka cluster goes away for a while mid-stream; the engine rides it out.</summary>
public sealed class OutageTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "inference-outage-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static readonly TimeSpan OutageLength = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task A_ten_second_broker_outage_mid_stream_loses_nothing_and_counts_nothing_twice()
    {
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels", "events.dead-letter", "labels.dead-letter" })
        {
            kafka.CreateTopic(topic, 4);
        }
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Checkpoints:Directory"] = _directory;
        settings["Inference:Checkpoints:IntervalMs"] = "500";
        settings["Inference:Training:BatchSize"] = "16";
        EngineHarness.Declare(settings, ("count", "Count", null, null), ("sum", "Sum", "amount", null), ("last", "Last", "amount", null));
        await using var engine = await EngineHarness.StartAsync(settings);

        const int Events = 30_000;
        const int EveryLabel = 10;
        var oracle = new Dictionary<string, List<float>>();
        var random = new Random(8);
        long time = 1_767_225_600_000;
        var producing = Task.Run(async () =>
        {
            // Idempotent and patient: the producer holds its messages through the outage and writes each once.
            using var producer = new ProducerBuilder<string, byte[]>(new ProducerConfig
            {
                BootstrapServers = kafka.BootstrapServers,
                EnableIdempotence = true,
                LingerMs = 2,
                MessageTimeoutMs = 120_000,
            }).SetLogHandler((_, _) => { }).Build();
            for (int i = 0; i < Events; i++)
            {
                string entity = $"e{random.Next(500)}";
                float amount = (float)Math.Round(random.NextDouble() * 100, 2);
                (oracle.TryGetValue(entity, out var list) ? list : oracle[entity] = []).Add(amount);
                string json = string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{entity}\",\"ts\":{++time},\"amount\":{amount:0.##}}}");
                producer.Produce("events", new Message<string, byte[]> { Key = entity, Value = Encoding.UTF8.GetBytes(json) });
                if (i % EveryLabel == 0)
                {
                    string label = string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{entity}\",\"ts\":{time},\"label\":{random.Next(2)}}}");
                    producer.Produce("labels", new Message<string, byte[]> { Key = entity, Value = Encoding.UTF8.GetBytes(label) });
                }
                if (i % 250 == 249)
                {
                    await Task.Delay(100);
                }
            }
            producer.FlushAll();
        });

        // Mid-stream: the engine is applying and learning, the producer still producing.
        await EngineHarness.WaitUntil(() => engine.Metrics.EventsApplied >= Events / 4, TimeSpan.FromSeconds(60), () => "a quarter of the events applied");
        kafka.SetDown(true);
        output.WriteLine($"broker down at {engine.Metrics.EventsApplied} events applied, {engine.Metrics.LabelsTrained} labels learned");
        // The fault itself lasts a set time, longer than the group's session timeout (6 s): the scenario, not a wait for something.
        await Task.Delay(OutageLength);
        kafka.SetDown(false);
        Assert.False(producing.IsCompleted, "the outage should fall mid-stream");
        await producing;

        await EngineHarness.WaitUntil(() => engine.Metrics.EventsApplied >= Events && engine.Metrics.LabelsTrained >= Events / EveryLabel, TimeSpan.FromSeconds(120),
            () => $"{Events} events applied and {Events / EveryLabel} labels learned (got {engine.Metrics.EventsApplied}, {engine.Metrics.LabelsTrained})");
        // Past a barrier on every partition: anything read twice would be counted by now (it must not be).
        await Streams.BarrierAsync(kafka.BootstrapServers, "events", Enumerable.Range(0, 4), () => engine.Metrics.MalformedEvents);
        await Streams.BarrierAsync(kafka.BootstrapServers, "labels", Enumerable.Range(0, 4), () => engine.Metrics.MalformedLabels);
        output.WriteLine($"replayed after the outage (skipped, not applied again): {engine.Get<Inference.Engine.Ingest.IngestMetrics>().ReplayedEvents} events, {engine.Get<Inference.Engine.Training.TrainingMetrics>().ReplayedLabels} labels");
        Assert.Equal(Events, engine.Metrics.EventsApplied);
        Assert.Equal(Events / EveryLabel, engine.Metrics.LabelsTrained);
        Assert.Equal(0, engine.Metrics.DataLossResets);
        var store = engine.Get<FeatureStore>();
        foreach (var (entity, amounts) in oracle)
        {
            var values = store.Read(entity)!;
            Assert.Equal(amounts.Count, values["count"]);
            Assert.Equal(amounts.Sum(a => (double)a), values["sum"], 1e-5 * Math.Max(1, amounts.Sum(a => (double)a)));
            Assert.Equal(amounts[^1], values["last"]);
        }
    }
}

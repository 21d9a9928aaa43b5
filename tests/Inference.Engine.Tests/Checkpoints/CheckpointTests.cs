using System.Globalization;
using System.Text;
using Confluent.Kafka;
using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Training;
using Inference.Kernels.Features;
using Inference.Models;
using Inference.Models.Parameters;
using Inference.Models.Registry;
using Inference.Models.Training;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Engine.Tests;

/// <summary>Checkpoint files on a real directory, and restarts of a real engine on a broker that outlives it.</summary>
public sealed class CheckpointTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "inference-checkpoints-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void Files_round_trip_and_a_corrupt_checkpoint_is_rejected()
    {
        var random = new Random(5);
        // Two record batches of slots, every state word random.
        const int capacity = 70_000;
        var heads = new byte[capacity * FeatureTableSnapshot.HeadWords * sizeof(long)];
        var words = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(heads.AsSpan());
        for (int i = 0; i < words.Length; i++)
        {
            // The padding words are always zero in a table.
            words[i] = i % FeatureTableSnapshot.HeadWords < FeatureTableSnapshot.HeadColumns.Count ? random.NextInt64() : 0;
        }
        var longs = Enumerable.Range(0, capacity * 3).Select(_ => random.NextInt64()).ToArray();
        var doubles = Enumerable.Range(0, capacity * 2).Select(_ => random.NextDouble() * 1e6).ToArray();
        var registers = Enumerable.Range(0, capacity).Select(_ => random.Next()).ToArray();
        // Every seventh slot free: key 0 and nothing else (free slots are not written, and read back as zeros).
        for (int slot = 0; slot < capacity; slot += 7)
        {
            words.Slice(slot * FeatureTableSnapshot.HeadWords, FeatureTableSnapshot.HeadWords).Clear();
            longs.AsSpan(slot * 3, 3).Clear();
            doubles.AsSpan(slot * 2, 2).Clear();
            registers[slot] = 0;
        }
        var free = Enumerable.Range(0, capacity / 7 + 1).Select(i => i * 7).ToArray();
        var table = new FeatureTableSnapshot("PLAN", capacity, 42, -3, heads, longs, doubles, registers, free);
        var events = new FeatureWatermark([new PartitionOffset("events", 0, 10), new PartitionOffset("events", 3, 99)], 1_767_225_600_123, 77);
        var parameters = new ParameterSet([new NamedParameter("w", [1, 3], [0.25f, -1.5f, 3.125e-7f]), new NamedParameter("b", [1], [float.Epsilon])]);
        var trainer = new TrainerCheckpoint(new LearnerState(parameters, 12.5, [1, 2, 3], [4, 5, 6]), [new PartitionOffset("labels", 1, 7)], 640, 64, 9, 0.1);

        var written = CheckpointFiles.Write(_directory, new Checkpoint(table, events, trainer, "MODEL"), TimeProvider.System);
        var read = CheckpointFiles.Read(written.Path);

        Assert.Equal(table.Heads, read.Table.Heads);
        Assert.Equal(table.Longs, read.Table.Longs);
        Assert.Equal(table.Doubles, read.Table.Doubles);
        Assert.Equal(table.Registers, read.Table.Registers);
        Assert.Equal(table.FreeSlots, read.Table.FreeSlots);
        Assert.Equal((42, -3, "PLAN", "MODEL"), (read.Table.Sequence, read.Table.PinMark, read.PlanFingerprint, read.ModelFingerprint));
        Assert.Equal(events.Partitions, read.Events.Partitions);
        Assert.Equal((events.MaxEventTimeMs, events.BatchesApplied), (read.Events.MaxEventTimeMs, read.Events.BatchesApplied));
        Assert.True(parameters.ApproximatelyEquals(read.Trainer!.Learner.Parameters));
        Assert.Equal([1.0, 2, 3], read.Trainer.Learner.Sums);
        Assert.Equal((640L, 64L, 9L, 12.5), (read.Trainer.LabelsLearned, read.Trainer.LabelsSkipped, read.Trainer.BaseVersion, read.Trainer.Learner.Rows));
        Assert.Equal(trainer.LabelOffsets, read.Trainer.LabelOffsets);
        // Zstandard: the slot columns of free slots and repeated values shrink.
        Assert.True(written.Manifest!.Files.Sum(f => f.Bytes) < heads.Length + longs.Length * 8L + doubles.Length * 8L + registers.Length * 4L);

        // A second checkpoint, then one byte of it flipped: it no longer verifies and says which file.
        var second = CheckpointFiles.Write(_directory, new Checkpoint(table, events, null, "MODEL"), TimeProvider.System);
        Assert.Equal(written.Sequence + 1, second.Sequence);
        string entities = Path.Combine(second.Path, "entities.arrow");
        var bytes = File.ReadAllBytes(entities);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(entities, bytes);
        var error = Assert.Throws<InvalidDataException>(() => CheckpointFiles.Read(second.Path));
        Assert.Contains("entities.arrow", error.Message);
        // A temporary directory (a write cut short) is never listed as a checkpoint, and pruning keeps the newest.
        Directory.CreateDirectory(Path.Combine(_directory, "checkpoint-000000000009.tmp-1"));
        Assert.Equal([written.Sequence, second.Sequence], CheckpointFiles.List(_directory).Select(e => e.Sequence));
        CheckpointFiles.Prune(_directory, keep: 1);
        Assert.Equal([second.Sequence], CheckpointFiles.List(_directory).Select(e => e.Sequence));
        Assert.False(Directory.Exists(Path.Combine(_directory, "checkpoint-000000000009.tmp-1")));
    }

    [Theory]
    [InlineData("Sgd")]
    [InlineData("Adam")]
    public async Task A_restart_restores_features_model_and_offsets_and_replays_nothing_twice(string optimizer)
    {
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels", "events.dead-letter", "labels.dead-letter" })
        {
            kafka.CreateTopic(topic, 4);
        }
        var settings = Settings(kafka);
        settings["Inference:Training:Optimizer"] = optimizer;
        var oracle = new Dictionary<string, List<float>>();
        var random = new Random(11);
        long time = 1_767_225_600_000;
        using var producer = EngineHarness.Producer(kafka.BootstrapServers);
        void Produce(int events, int labels)
        {
            for (int i = 0; i < events; i++)
            {
                string entity = $"e{random.Next(300)}";
                float amount = (float)Math.Round(random.NextDouble() * 100, 2);
                (oracle.TryGetValue(entity, out var list) ? list : oracle[entity] = []).Add(amount);
                string json = string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{entity}\",\"ts\":{++time},\"amount\":{amount:0.##}}}");
                producer.Produce("events", new Message<string, byte[]> { Key = entity, Value = Encoding.UTF8.GetBytes(json) });
            }
            for (int i = 0; i < labels; i++)
            {
                string entity = $"e{random.Next(300)}";
                string json = string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{entity}\",\"ts\":{time},\"label\":{random.Next(2)}}}");
                producer.Produce("labels", new Message<string, byte[]> { Key = entity, Value = Encoding.UTF8.GetBytes(json) });
            }
            producer.FlushAll();
        }

        Produce(4_000, 640);
        IReadOnlyDictionary<string, double>[] before;
        ParameterSet modelBefore;
        await using (var first = await EngineHarness.StartAsync(settings))
        {
            await first.WaitTakenAsync(new Taken(4_000, Labels: 640));
            var store = first.Get<FeatureStore>();
            before = [.. oracle.Keys.Order().Select(e => store.Read(e)!)];
            // Learning has stopped (no labels left): two sync rounds later, what was learned is published and merged.
            long rounds = first.Metrics.SyncRounds;
            await EngineHarness.WaitUntil(() => first.Metrics.SyncRounds >= rounds + 2, TimeSpan.FromSeconds(30), () => $"two sync rounds after the last label (so far {first.Metrics.SyncRounds - rounds})");
            modelBefore = first.Get<ModelRegistry>().CurrentParameters();
        }
        // The graceful stop wrote a final checkpoint holding everything.
        var newest = CheckpointFiles.List(_directory)[^1];
        Assert.Equal(640, newest.Manifest!.Trainer!.LabelsLearned);
        Assert.Equal(4_000 - 4, newest.Manifest.Events.Offsets.Sum(o => o.Offset));

        await using (var second = await EngineHarness.StartAsync(settings))
        {
            var coordinator = second.Get<CheckpointCoordinator>();
            await EngineHarness.WaitUntil(() => coordinator.Ready, TimeSpan.FromSeconds(30), () => "ready after restore");
            var store = second.Get<FeatureStore>();
            var after = oracle.Keys.Order().Select(e => store.Read(e)!).ToArray();
            for (int i = 0; i < before.Length; i++)
            {
                Assert.Equal(before[i], after[i]);
            }
            // Within float rounding: the checkpoint may hold the trainer's weights just before its last sync
            // adopted the merge (base + (weights - base), equal up to one ulp).
            Assert.True(modelBefore.ApproximatelyEquals(second.Get<ModelRegistry>().CurrentParameters(), 1e-6f), "the restored model is the one the first run published last");
            // Nothing was read twice: the consumers started right after the checkpoint's offsets.
            Assert.Equal(0, second.Metrics.EventsApplied);
            Assert.Equal(0, second.Metrics.LabelsTrained);

            // Counted before the events: a checkpoint that covers them may be written before the wait below ends.
            var written = second.Get<CheckpointMetrics>().Written;
            Produce(1_000, 64);
            await second.WaitTakenAsync(new Taken(1_000, Labels: 64));
            foreach (var (entity, amounts) in oracle)
            {
                var values = store.Read(entity)!;
                Assert.Equal(amounts.Count, values["count"]);
                Assert.Equal(amounts.Sum(a => (double)a), values["sum"], 1e-5 * Math.Max(1, amounts.Sum(a => (double)a)));
                Assert.Equal(amounts.Min(), values["min"]);
                Assert.Equal(amounts.Max(), values["max"]);
                Assert.Equal(amounts[^1], values["last"]);
            }
            await EngineHarness.WaitUntil(() => second.Get<CheckpointMetrics>().Written > written, TimeSpan.FromSeconds(10), () => "a checkpoint after the new events");
        }
        // Kafka's committed offsets follow the checkpoints: after the final one, they are at the end.
        using var consumer = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = kafka.BootstrapServers, GroupId = "inference" }).Build();
        var committed = consumer.Committed([.. Enumerable.Range(0, 4).Select(p => new TopicPartition("events", p))], TimeSpan.FromSeconds(10));
        Assert.Equal(5_000, committed.Sum(c => c.Offset.Value));
    }

    [Fact]
    public async Task A_restart_goes_on_with_the_lineage_and_a_model_file_either_wins_or_stops_the_start()
    {
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels", "events.dead-letter", "labels.dead-letter" })
        {
            kafka.CreateTopic(topic, 4);
        }
        var settings = Settings(kafka);
        var random = new Random(5);
        var labels = Enumerable.Range(0, 320).Select(i => Streams.Json($"e{i % 50}",
            string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"e{i % 50}\",\"ts\":{1_767_225_600_000 + i},\"label\":{random.Next(2)}}}"))).ToList();
        ModelRegistry firstRegistry;
        await using (var first = await EngineHarness.StartAsync(settings))
        {
            await first.ProduceAndWaitAsync("labels", labels, new Taken(0, Labels: 320));
            firstRegistry = first.Get<ModelRegistry>();
        }
        // The lineage the newest checkpoint holds (the first run's, up to its last cut): the restart goes on from it.
        var lineage = CheckpointFiles.ReadTrainer(CheckpointFiles.List(_directory)[^1].Path)!.Lineage!;
        Assert.All(lineage, record => Assert.Equal(firstRegistry.Find(record.Version)?.Id, record.Id));
        Assert.True(lineage.Count > 1, "the first run published no version");

        await using (var second = await EngineHarness.StartAsync(settings))
        {
            await EngineHarness.WaitUntil(() => second.Get<CheckpointCoordinator>().Ready, TimeSpan.FromSeconds(30), () => "ready after restore");
            var registry = second.Get<ModelRegistry>();
            await EngineHarness.WaitUntil(() => registry.Version > lineage[0].Version, TimeSpan.FromSeconds(30), () => "the restored weights published");
            var restored = registry.Find(registry.Version)!;
            Assert.Equal(ModelOrigin.Restored, restored.Origin);
            Assert.Equal(lineage[0].Version + 1, restored.Version);
            Assert.Equal(lineage[0].Version, restored.Parent);
            // The first run's records as they were (ids included), under the same numbers.
            var history = registry.History();
            foreach (var record in lineage)
            {
                Assert.Equal(record.Id, history.Single(h => h.Version == record.Version).Id);
            }
        }

        // A model file against the checkpoint's weights: the start stops naming the conflict ...
        string file = Path.Combine(_directory, "..", $"model-{Guid.NewGuid():N}.safetensors");
        var weights = new ParameterSet([.. ModelRegistryWeights(settings).Parameters.Select(p => p.Name.EndsWith("weight", StringComparison.Ordinal) ? p with { Values = [.. p.Values.Select((_, i) => 0.25f * (i + 1))] } : p)]);
        Inference.Models.Exchange.ModelFile.Write(file, weights);
        try
        {
            settings["Inference:Model:File"] = file;
            var refused = await Assert.ThrowsAnyAsync<Exception>(() => EngineHarness.StartAsync(settings));
            Assert.Contains("Inference:Model:File", refused.Message);
            Assert.Contains("FileWins", refused.Message);

            // ... unless the file is told to win: it serves, and the checkpoint's lineage goes on.
            settings["Inference:Model:FileWins"] = "true";
            await using var third = await EngineHarness.StartAsync(settings);
            var registry = third.Get<ModelRegistry>();
            await EngineHarness.WaitUntil(() => registry.Find(registry.Version)?.Origin == ModelOrigin.Imported && registry.Version > lineage[0].Version,
                TimeSpan.FromSeconds(30), () => "the file's weights published over the checkpoint's");
            Assert.Equal(ModelVersion.ContentId(ModelKind.Logistic, Inference.Models.Exchange.ModelFile.Read(file).Parameters), registry.Find(registry.Version)!.Id);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>The shape of the engine's model under <paramref name="settings"/> (a registry built as the engine builds it).</summary>
    private static ParameterSet ModelRegistryWeights(Dictionary<string, string?> settings)
    {
        int inputs = settings.Keys.Count(k => k.StartsWith("Inference:Features:Definitions:", StringComparison.Ordinal) && k.EndsWith(":Name", StringComparison.Ordinal));
        using var registry = new ModelRegistry(new ModelSpec(ModelKind.Logistic, inputs));
        return registry.CurrentParameters();
    }

    [Fact]
    public async Task A_checkpoint_of_other_features_stops_the_start_unless_told_to_discard_it()
    {
        using var kafka = new EmbeddedKafka();
        foreach (var topic in new[] { "events", "labels", "events.dead-letter", "labels.dead-letter" })
        {
            kafka.CreateTopic(topic, 4);
        }
        var settings = Settings(kafka);
        await using (var first = await EngineHarness.StartAsync(settings))
        {
            await EngineHarness.WaitUntil(() => first.Get<CheckpointCoordinator>().Ready, TimeSpan.FromSeconds(30), () => "ready");
            await first.App.Services.GetRequiredService<IEnumerable<Microsoft.Extensions.Hosting.IHostedService>>().OfType<CheckpointWriter>().Single()
                .TakeAsync(Timeout.Infinite, CancellationToken.None);
        }
        // Nothing happened after the first: no other checkpoint was written.
        Assert.Single(CheckpointFiles.List(_directory));

        settings["Inference:Features:Definitions:1:Aggregation"] = "Mean";
        var error = await Assert.ThrowsAsync<CheckpointException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("feature declarations", error.Message);
        Assert.Contains("DiscardMismatched", error.Message);

        settings["Inference:Checkpoints:DiscardMismatched"] = "true";
        await using (var second = await EngineHarness.StartAsync(settings))
        {
            Assert.Null(second.Get<CheckpointCoordinator>().Restored);
        }
        Assert.Single(Directory.EnumerateDirectories(_directory, "discarded-checkpoint-*"));
    }

    private Dictionary<string, string?> Settings(EmbeddedKafka kafka)
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Checkpoints:Directory"] = _directory;
        settings["Inference:Checkpoints:IntervalMs"] = "300";
        settings["Inference:Training:BatchSize"] = "32";
        EngineHarness.Declare(settings,
            ("count", "Count", null, null),
            ("sum", "Sum", "amount", null),
            ("min", "Min", "amount", null),
            ("max", "Max", "amount", null),
            ("last", "Last", "amount", null));
        return settings;
    }
}

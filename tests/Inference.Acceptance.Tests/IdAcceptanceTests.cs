using System.Globalization;
using Inference.Engine.Kafka;
using Inference.Testing;
using Xunit.Abstractions;

namespace Inference.Acceptance.Tests;

/// <summary>
/// The planted-ids workload at a test's scale (2,000 users, 200 items, skewed by Zipf's law): events and labels
/// by Kafka, Score from outside before each block of labels. The ids carry most of the signal, so a model over
/// them must learn it and the model over the aggregates alone must not (the full scale is bench planted-ids).
/// </summary>
public sealed class IdAcceptanceTests(ITestOutputHelper output)
{
    private const int Users = 2_000;
    private const int Items = 200;
    private const int Labels = 100_000;
    private const int Measured = 20_000;
    private const int HeldOut = 5_000;

    private static async Task<PlantedResult> RunAsync(string kind)
    {
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", 4);
        kafka.CreateTopic("labels", 4);
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Kafka:DeadLetterTopic"] = "";
        settings["Inference:Kafka:LabelsDeadLetterTopic"] = "";
        settings["Inference:Model:Kind"] = kind;
        settings["Inference:Training:BatchSize"] = "256";
        settings["Inference:Training:PublishIntervalMs"] = "0";
        settings["Inference:Training:Optimizer"] = "Adam";
        settings["Inference:Training:LearningRate"] = "0.01";
        settings["Inference:Training:EmbeddingLearningRate"] = "0.3";
        settings["Inference:Training:EmbeddingInitScale"] = "0.1";
        EngineHarness.Declare(settings, ("count", "Count", null, null), ("amount_mean", "Mean", "amount", null));
        if (kind != "Logistic")
        {
            EngineHarness.DeclareIds(settings, ("user", "Entity", PlantedIds.Dimension), ("item", "Request", PlantedIds.Dimension));
        }
        await using var engine = await EngineHarness.StartAsync(settings);
        var run = new PlantedRun(new PlantedIds(Users, Items, seed: 23), kafka.BootstrapServers, engine.Channel, () => engine.Metrics.EventsApplied, () => engine.Metrics.LabelsTrained)
        {
            WithIds = kind != "Logistic",
            Timeout = TimeSpan.FromMinutes(3),
        };
        return await run.RunAsync(Labels, Measured, HeldOut);
    }

    [Fact]
    public async Task A_dot_product_model_learns_what_the_ids_carry_and_the_aggregates_alone_cannot()
    {
        var ids = await RunAsync("DotProduct");
        var aggregates = await RunAsync("Logistic");
        string report = string.Create(CultureInfo.InvariantCulture,
            $"progressive log loss over the last {Measured:N0} labels: DotProduct {ids.Progressive:F4}, aggregates alone {aggregates.Progressive:F4}, planted {ids.PlantedProgressive:F4}; "
            + $"held-out: DotProduct {ids.HeldOut:F4}, aggregates alone {aggregates.HeldOut:F4}, planted {ids.PlantedHeldOut:F4}");
        output.WriteLine(report);
        // The same stream for both (one seed): the planted loss is the same.
        Assert.Equal(ids.PlantedProgressive, aggregates.PlantedProgressive, 12);
        Assert.True(aggregates.Progressive - ids.Progressive >= 0.05, report);
        Assert.True(ids.Progressive - ids.PlantedProgressive <= 0.08, report);
        Assert.True(aggregates.HeldOut - ids.HeldOut >= 0.05, report);
    }
}

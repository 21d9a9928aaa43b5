using System.Diagnostics;
using System.Globalization;
using Grpc.Net.Client;
using Inference.Engine.Hosting;
using Inference.Engine.Kafka;
using Inference.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Bench.Pipeline;

/// <summary>
/// The planted-ids workload (<see cref="PlantedIds"/>) through the engine, one model kind after another on the
/// same stream: events and labels by the embedded Kafka broker, Score from outside before each block of labels
/// (progressive log loss), held-out labels scored at the end; against the planted model's loss on the same
/// labels, the model over the aggregates alone, and a batch reference in PyTorch on the same labels.
/// </summary>
internal static class PlantedIdsBench
{
    private const int Seed = 19;

    public static async Task<int> RunAsync(int users, int items, int labels, int measured, int heldOut, int partitions, string kinds, bool reference,
        int dimension, int backlog, IReadOnlyDictionary<string, string?> overrides)
    {
        Console.WriteLine($"Planted ids: {users:N0} users, {items:N0} items, {labels:N0} labels (progressive loss over the last {measured:N0}), {heldOut:N0} held out; {partitions} partitions; {Environment.ProcessorCount} cores.");
        var results = new List<(string Kind, PlantedResult Result)>();
        string data = Path.Combine(Path.GetTempPath(), $"inference-planted-{Guid.NewGuid():N}");
        foreach (string kind in kinds.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            bool withIds = kind != "Logistic";
            var result = await RunOneAsync(kind, users, items, labels, measured, heldOut, partitions, withIds && reference && !Directory.Exists(data) ? data : null, dimension, backlog, overrides);
            results.Add((kind, result));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{kind,-13} progressive {result.Progressive:F4} (planted {result.PlantedProgressive:F4}, gap {result.Progressive - result.PlantedProgressive:+0.0000;-0.0000}); held-out {result.HeldOut:F4} (planted {result.PlantedHeldOut:F4}); {result.LabelsPerSecond:N0} labels/s with Score before each block; a backlog of {backlog:N0} learned at {result.BacklogPerSecond:N0} labels/s"));
        }
        if (results.Find(r => r.Kind == "Logistic") is { Kind: not null } logistic)
        {
            foreach (var (kind, result) in results.Where(r => r.Kind != "Logistic"))
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{kind}: the aggregates alone are worse by {logistic.Result.Progressive - result.Progressive:F4} (progressive)"));
            }
        }
        if (reference && Directory.Exists(data))
        {
            foreach (var (kind, result) in results.Where(r => r.Kind != "Logistic"))
            {
                string? line = Reference(data, kind, dimension);
                Console.WriteLine($"{kind}: PyTorch batch reference {line ?? "(failed)"}; the engine's held-out {result.HeldOut.ToString("F4", CultureInfo.InvariantCulture)}");
            }
            Directory.Delete(data, recursive: true);
        }
        return 0;
    }

    private static async Task<PlantedResult> RunOneAsync(string kind, int users, int items, int labels, int measured, int heldOut, int partitions, string? data,
        int dimension, int backlog, IReadOnlyDictionary<string, string?> overrides)
    {
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", partitions);
        kafka.CreateTopic("labels", partitions);
        var settings = Settings(kafka, kind, users, items, dimension);
        foreach (var (key, value) in overrides)
        {
            settings[key] = value;
        }
        var app = InferenceApplication.Build([], settings);
        await app.StartAsync();
        try
        {
            var metrics = app.Services.GetRequiredService<InferenceMetrics>();
            using var channel = GrpcChannel.ForAddress(app.GrpcAddress());
            var run = new PlantedRun(new PlantedIds(users, items, Seed), kafka.BootstrapServers, channel, () => metrics.EventsApplied, () => metrics.LabelsTrained)
            {
                WithIds = kind != "Logistic",
                ReferenceDirectory = data,
                Timeout = TimeSpan.FromMinutes(20),
            };
            var clock = Stopwatch.StartNew();
            var result = await run.RunAsync(labels, measured, heldOut);
            double learned = backlog > 0 ? await run.LearnBacklogAsync(backlog) : 0;
            Console.Error.WriteLine($"{kind}: {clock.Elapsed.TotalSeconds:F0} s in all");
            return result with { BacklogPerSecond = learned };
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>The engine of the planted workload: its two aggregates, the model (and its two id inputs), the bench's training settings.</summary>
    internal static Dictionary<string, string?> Settings(EmbeddedKafka kafka, string kind, int users, int items, int dimension)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers,
            ["Inference:Kafka:GroupId"] = "planted",
            ["Inference:Kafka:DeadLetterTopic"] = "",
            ["Inference:Kafka:LabelsDeadLetterTopic"] = "",
            ["Inference:Features:Capacity"] = (2 * users + 20_000).ToString(CultureInfo.InvariantCulture),
            ["Inference:Features:InitialCapacity"] = (2 * users + 20_000).ToString(CultureInfo.InvariantCulture),
            ["Inference:Features:Definitions:0:Name"] = "count",
            ["Inference:Features:Definitions:0:Aggregation"] = "Count",
            ["Inference:Features:Definitions:0:Transform"] = "SignedLog1p",
            ["Inference:Features:Definitions:1:Name"] = "amount_mean",
            ["Inference:Features:Definitions:1:Aggregation"] = "Mean",
            ["Inference:Features:Definitions:1:Field"] = "amount",
            ["Inference:Features:Definitions:1:Transform"] = "SignedLog1p",
            ["Inference:Model:Kind"] = kind,
            ["Inference:Model:Hidden"] = "32",
            ["Inference:Training:BatchSize"] = "256",
            ["Inference:Training:PublishIntervalMs"] = "0",
            ["Inference:Training:Optimizer"] = "Adam",
            ["Inference:Training:LearningRate"] = "0.01",
            ["Inference:Training:EmbeddingLearningRate"] = "0.3",
            ["Inference:Training:EmbeddingInitScale"] = "0.1",
            ["Inference:Serving:Port"] = "0",
            ["Inference:Serving:HttpPort"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        if (kind != "Logistic")
        {
            settings["Inference:Model:Ids:0:Name"] = "user";
            settings["Inference:Model:Ids:0:Source"] = "Entity";
            settings["Inference:Model:Ids:0:Dimension"] = dimension.ToString(CultureInfo.InvariantCulture);
            settings["Inference:Model:Ids:0:Capacity"] = (2 * users + 8_192).ToString(CultureInfo.InvariantCulture);
            settings["Inference:Model:Ids:1:Name"] = "item";
            settings["Inference:Model:Ids:1:Dimension"] = dimension.ToString(CultureInfo.InvariantCulture);
            settings["Inference:Model:Ids:1:Capacity"] = (2 * items + 8_192).ToString(CultureInfo.InvariantCulture);
        }
        return settings;
    }

    /// <summary>Runs bench/ids/reference.py on the written labels; its JSON line, or null when it failed.</summary>
    private static string? Reference(string data, string kind, int dimension)
    {
        string script = Path.Combine(Repository.Root, "bench", "ids", "reference.py");
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in new[] { script, data, kind, "--dimension", dimension.ToString(CultureInfo.InvariantCulture), "--hidden", "32" })
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        string error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            Console.Error.WriteLine(error);
            return null;
        }
        return output.Trim();
    }
}

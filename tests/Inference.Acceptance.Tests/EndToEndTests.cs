using Confluent.Kafka;
using Inference.Demo;
using Inference.Engine.Features;
using Inference.Proto.V1;
using Xunit.Abstractions;

namespace Inference.Acceptance.Tests;

/// <summary>Embedded broker over TCP → engine host → gRPC client over loopback; nothing mocked.</summary>
public sealed class EndToEndTests(ITestOutputHelper output)
{
    private const double HalfLifeMs = 30_000;

    [Fact]
    public async Task Features_match_a_reference_whatever_the_order_then_labels_teach_the_model()
    {
        const int seed = 4242;
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        EngineHarness.Declare(settings,
            ("count", "Count", null, null),
            ("amount_sum", "Sum", "amount", null),
            ("amount_mean", "Mean", "amount", null),
            ("amount_decayed", "DecayedSum", "amount", $"HalfLifeMs={HalfLifeMs}"));
        settings["Inference:Training:BatchSize"] = "32";
        settings["Inference:Training:LearningRate"] = "0.5";
        settings["Inference:Training:PublishIntervalMs"] = "50";
        await using var engine = await EngineHarness.StartAsync(settings);
        var client = new ScoringService.ScoringServiceClient(engine.Channel);

        // Events in shuffled order: the reference sees them in event-time order.
        var stream = new SyntheticStream(entities: 120, seed);
        var events = Enumerable.Range(0, 6_000).Select(_ => stream.NextEvent()).ToList();
        var shuffle = new Random(seed);
        var shuffled = events.OrderBy(_ => shuffle.Next()).ToList();
        await engine.ProduceAndWaitAsync("events", shuffled.Select(e => new Message<string, byte[]> { Key = stream.Key(e.Entity), Value = e.Json }), new Taken(events.Count));

        var store = engine.Get<FeatureStore>();
        long watermark = events.Max(e => e.TimeMs);
        Assert.Equal(watermark, store.Watermark.MaxEventTimeMs);
        foreach (var group in events.GroupBy(e => e.Entity))
        {
            var features = store.Read(stream.Key(group.Key));
            Assert.NotNull(features);
            double sum = group.Sum(e => (double)e.Amount);
            // Decayed sums are read as of the watermark: the newest event time applied.
            double decayed = group.Sum(e => e.Amount * Math.Pow(2, -(watermark - e.TimeMs) / HalfLifeMs));
            Assert.Equal(group.Count(), features["count"]);
            Assert.True((float)sum == features["amount_sum"], $"seed {seed} {stream.Key(group.Key)}: sum {features["amount_sum"]:R}, expected {sum:R}");
            Assert.True(Math.Abs(features["amount_decayed"] - decayed) <= 1e-5 * decayed,
                $"seed {seed} {stream.Key(group.Key)}: decayed {features["amount_decayed"]:R}, expected {decayed:R}");
        }
        Assert.Equal(0, engine.Metrics.MalformedEvents);

        // Held-out entities: scored, never trained on. Expected log loss against the planted probabilities.
        var heldOut = Enumerable.Range(0, 30).ToArray();
        var training = Enumerable.Range(30, stream.Entities - 30).ToArray();
        var (initialLoss, initialResponse) = await HeldOutLoss(client, stream, heldOut);
        Assert.Equal(1, initialResponse.ModelVersion);
        Assert.Equal(events.Max(e => e.TimeMs), initialResponse.Watermark.MaxEventTimeMs);
        Assert.Equal(4, initialResponse.Watermark.Partitions.Count);
        Assert.Equal(events.Count - 1, initialResponse.Watermark.Partitions.Sum(p => p.LastAppliedOffset + 1) - 1);

        var random = new Random(seed);
        var labels = Enumerable.Range(0, 6_000).Select(_ => training[random.Next(training.Length)]).Select(entity => new Message<string, byte[]> { Key = stream.Key(entity), Value = stream.NextLabel(entity).Json }).ToList();
        await engine.ProduceAndWaitAsync("labels", labels, new Taken(events.Count, Labels: 6_000), TimeSpan.FromSeconds(120));
        await EngineHarness.WaitUntil(() => engine.Get<Models.Registry.ModelRegistry>().Version > 1, TimeSpan.FromSeconds(10), () => "a published model version above 1");

        var (trainedLoss, trainedResponse) = await HeldOutLoss(client, stream, heldOut);
        double plantedLoss = heldOut.Average(e => Entropy(stream.TrueProbability(e)));
        output.WriteLine($"held-out log loss: initial {initialLoss:F4}, trained {trainedLoss:F4}, planted {plantedLoss:F4}; version {trainedResponse.ModelVersion}");
        Assert.True(trainedResponse.ModelVersion > 1, $"model version {trainedResponse.ModelVersion}");
        Assert.True(trainedLoss < initialLoss - 0.1 && trainedLoss < plantedLoss + 0.1,
            $"held-out log loss {trainedLoss:F4} after training, {initialLoss:F4} before, planted model {plantedLoss:F4}");
    }

    private static async Task<(double Loss, ScoreResponse Response)> HeldOutLoss(ScoringService.ScoringServiceClient client, SyntheticStream stream, int[] entities)
    {
        var request = new ScoreRequest();
        foreach (int e in entities)
        {
            request.Rows.Add(new ScoreRow { Entity = stream.Key(e), RequestId = $"r-{e}" });
        }
        var response = await client.ScoreAsync(request);
        Assert.Equal(entities.Length, response.Scores.Count);
        Assert.Equal(request.Rows.Select(r => r.RequestId), response.RequestIds);
        double loss = 0;
        for (int i = 0; i < entities.Length; i++)
        {
            double p = stream.TrueProbability(entities[i]);
            double q = Math.Clamp(response.Scores[i], 1e-7, 1 - 1e-7);
            loss -= p * Math.Log(q) + (1 - p) * Math.Log(1 - q);
        }
        return (loss / entities.Length, response);
    }

    private static double Entropy(double p) => -(p * Math.Log(p) + (1 - p) * Math.Log(1 - p));
}

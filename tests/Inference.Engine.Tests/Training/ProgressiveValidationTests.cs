using System.Globalization;
using Inference.Engine.Training;
using Inference.Proto.V1;

namespace Inference.Engine.Tests;

/// <summary>Progressive validation: the serving versions' log loss, AUC and calibration over a sliding window of labels.</summary>
public sealed class ProgressiveValidationTests
{
    /// <summary>The AUC as its definition says: over every (positive, negative) pair, 1 when the positive scores higher, ½ for a tie.</summary>
    private static double PairwiseAuc(float[] scores, float[] labels)
    {
        double pairs = 0, weight = 0;
        for (int i = 0; i < scores.Length; i++)
        {
            for (int j = 0; j < scores.Length; j++)
            {
                double w = labels[i] * (1 - labels[j]);
                if (w == 0)
                {
                    continue;
                }
                weight += w;
                pairs += w * (scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0);
            }
        }
        return pairs / weight;
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(3, true)]
    public void The_windows_AUC_equals_the_pairwise_AUC_of_its_last_labels(int seed, bool soft)
    {
        var random = new Random(seed);
        var validation = new ProgressiveValidation(window: 700);
        var scores = new List<float>();
        var labels = new List<float>();
        for (int version = 1; version <= 9; version++)
        {
            // Scores on a coarse grid (many ties), labels leaning towards high scores.
            int n = random.Next(50, 300);
            var s = Enumerable.Range(0, n).Select(_ => random.Next(0, 40) / 40f).ToArray();
            var l = s.Select(x => soft ? (float)Math.Round(random.NextDouble() * x, 2) : random.NextDouble() < x ? 1f : 0f).ToArray();
            validation.Add(s, l, version);
            scores.AddRange(s);
            labels.AddRange(l);
        }
        var lastScores = scores.TakeLast(700).ToArray();
        var lastLabels = labels.TakeLast(700).ToArray();
        var (window, versions) = validation.Summarise();
        Assert.Equal(700, window.Labels);
        Assert.Equal(scores.Count, validation.Total);
        Assert.True(Math.Abs(PairwiseAuc(lastScores, lastLabels) - window.Auc) <= 1e-6, $"window AUC {window.Auc:R}, pairwise {PairwiseAuc(lastScores, lastLabels):R}");
        double loss = lastScores.Zip(lastLabels, (p, y) => -(y * Math.Log(Math.Clamp(p, 1e-7, 1 - 1e-7)) + (1 - y) * Math.Log(1 - Math.Clamp(p, 1e-7, 1 - 1e-7)))).Average();
        Assert.True(Math.Abs(loss - window.LogLoss) <= 1e-9);
        Assert.True(Math.Abs(lastScores.Average() - window.MeanScore) <= 1e-6);
        Assert.True(Math.Abs(lastLabels.Average() - window.PositiveRate) <= 1e-6);

        // Per version: the newest first, together the whole window.
        Assert.Equal(9, versions[0].Version);
        Assert.Equal(700, versions.Sum(v => v.Summary.Labels));
        Assert.True(versions.Zip(versions.Skip(1)).All(p => p.First.Version > p.Second.Version));
    }

    [Fact]
    public void Without_both_classes_the_AUC_is_not_a_number()
    {
        Assert.True(double.IsNaN(ProgressiveValidation.Auc([0.2f, 0.9f], [1f, 1f])));
        Assert.Equal(ValidationSummary.Empty, new ProgressiveValidation(10).Summarise().Window);
    }

    [Fact]
    public async Task GetModel_reports_how_the_serving_versions_scored_the_labels_before_learning_them()
    {
        using var kafka = IdModelTests.Kafka();
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
        settings["Inference:Training:BatchSize"] = "16";
        settings["Inference:Training:LearningRate"] = "0.5";
        settings["Inference:Training:PublishIntervalMs"] = "20";
        settings["Inference:Training:ValidationWindow"] = "1000";
        EngineHarness.Declare(settings, ("amount", "Last", "amount", null));
        await using var engine = await EngineHarness.StartAsync(settings);

        // A user's label is 1 when its amount is high: learnable from the one feature.
        const int Users = 50;
        var events = Enumerable.Range(0, Users).Select(u => Streams.Json($"user-{u}",
            string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"user-{u}\",\"ts\":1767225600000,\"amount\":{u * 2}}}"))).ToList();
        await engine.ProduceAndWaitAsync("events", events, new Taken(Users));
        var random = new Random(4);
        var labels = Enumerable.Range(0, 3_000).Select(i =>
        {
            int u = random.Next(Users);
            return Streams.Json($"user-{u}", string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"user-{u}\",\"ts\":{1767225600001 + i},\"label\":{(u >= Users / 2 ? 1 : 0)}}}"));
        }).ToList();
        await engine.ProduceAndWaitAsync("labels", labels, new Taken(Users, Labels: 3_000), TimeSpan.FromSeconds(60));

        var model = await new ScoringService.ScoringServiceClient(engine.Channel).GetModelAsync(new GetModelRequest());
        var validation = model.Validation;
        Assert.Equal(1_000, validation.Window);
        Assert.Equal(3_000, validation.TotalLabels);
        Assert.Equal(1_000, validation.Overall.Labels);
        Assert.Equal(1_000, validation.Versions.Sum(v => v.Metrics.Labels));
        Assert.True(validation.Versions.Count > 1, "the window's labels were scored by one version only");
        Assert.True(validation.Overall.Auc > 0.95, $"AUC {validation.Overall.Auc} over the window");
        Assert.InRange(validation.Overall.PositiveRate, 0.4, 0.6);
        Assert.True(validation.Versions[0].Version <= model.Version);
    }
}

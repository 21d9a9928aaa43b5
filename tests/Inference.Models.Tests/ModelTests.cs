using Inference.Models.Registry;
using Inference.Models.Training;

namespace Inference.Models.Tests;

public sealed class ModelTests
{
    [Theory]
    [InlineData(ModelKind.Logistic)]
    [InlineData(ModelKind.Mlp)]
    public void TorchSharp_loads_and_a_published_model_scores_probabilities(ModelKind kind)
    {
        using var registry = new ModelRegistry(new ModelSpec(kind, Inputs: 3));
        var scores = new float[2];
        using (var lease = registry.Acquire())
        {
            lease.Snapshot.Score([0f, 0f, 0f, 1f, -2f, 3f], rows: 2, scores);
        }
        Assert.All(scores, s => Assert.InRange(s, 0f, 1f));
        Assert.Equal(1, registry.Version);
    }

    [Theory]
    [InlineData(ModelKind.Logistic, 0)]
    [InlineData(ModelKind.Mlp, 0)]
    [InlineData(ModelKind.EmbeddingMlp, 2)]
    [InlineData(ModelKind.DotProduct, 2)]
    public void A_snapshot_scores_as_the_torchsharp_module_does(ModelKind kind, int ids)
    {
        // Serving evaluates the published weights directly; the module is the definition it must agree with.
        var spec = new ModelSpec(kind, Inputs: 5, Hidden: 7, IdDimensions: ids == 0 ? null : [3, 3]);
        var random = new Random(5);
        using var module = new ScoringModule(spec);
        var standardisation = Enumerable.Range(0, 2 * spec.Inputs).Select(_ => (float)(random.NextDouble() * 4 - 1)).ToArray();
        module.SetInputStandardisation(standardisation.AsSpan(0, spec.Inputs), standardisation.AsSpan(spec.Inputs));
        const int rows = 33;
        var inputs = Enumerable.Range(0, rows * spec.Inputs).Select(_ => (float)(random.NextDouble() * 20 - 10)).ToArray();
        var embeddings = Enumerable.Range(0, rows * spec.EmbeddingWidth).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        float[] expected;
        using (TorchSharp.torch.inference_mode())
        using (TorchSharp.torch.NewDisposeScope())
        {
            var logits = module.Forward(module.Inputs(inputs, rows), spec.HasIds ? module.Embeddings(embeddings, rows) : null);
            expected = TorchSharp.torch.sigmoid(logits).data<float>().ToArray();
        }

        using var registry = new ModelRegistry(spec, module.Export(), "module");
        var scores = new float[rows];
        using (var lease = registry.Acquire())
        {
            lease.Snapshot.Score(inputs, spec.HasIds ? embeddings : null, rows, scores);
        }

        Assert.Contains(expected, p => p is > 0.05f and < 0.95f);
        for (int r = 0; r < rows; r++)
        {
            Assert.True(Math.Abs(scores[r] - expected[r]) <= 1e-6f, $"{kind} row {r}: the snapshot scores {scores[r]:R}, the module {expected[r]:R}");
        }
    }

    [Fact]
    public void Sgd_learns_a_planted_logistic_model_and_publishing_bumps_the_version()
    {
        var spec = new ModelSpec(ModelKind.Logistic, Inputs: 2);
        using var registry = new ModelRegistry(spec);
        using var learner = new OnlineLearner(spec, learningRate: 0.5);
        var random = new Random(7);
        const int rows = 64;
        var x = new float[rows * 2];
        var y = new float[rows];
        double firstLoss = 0, lastLoss = 0;
        for (int step = 0; step < 300; step++)
        {
            for (int r = 0; r < rows; r++)
            {
                x[2 * r] = (float)(random.NextDouble() * 4 - 2);
                x[2 * r + 1] = (float)(random.NextDouble() * 4 - 2);
                double p = 1 / (1 + Math.Exp(-(2.5 * x[2 * r] - 1.5 * x[2 * r + 1] + 0.5)));
                y[r] = random.NextDouble() < p ? 1f : 0f;
            }
            double loss = learner.Step(x, y, rows);
            if (step == 0)
            {
                firstLoss = loss;
            }
            lastLoss = loss;
        }
        Assert.True(lastLoss < firstLoss - 0.15, $"loss went from {firstLoss} to {lastLoss}");

        var before = registry.CurrentParameters();
        Assert.Equal(2, registry.Publish(learner.Export()));
        Assert.False(before.ApproximatelyEquals(registry.CurrentParameters()));
        Assert.True(learner.Export().ApproximatelyEquals(registry.CurrentParameters()));
        var weights = registry.CurrentParameters().Find("layers.linear.weight");
        Assert.NotNull(weights);
        Assert.NotNull(registry.CurrentParameters().Find(ScoringModule.InputMeanName));
        Assert.True(weights.Values[0] > 1.0f && weights.Values[1] < -0.5f, $"weights {string.Join(", ", weights.Values)}");
    }

    [Fact]
    public void A_lease_keeps_its_snapshot_usable_after_a_newer_publish()
    {
        var spec = new ModelSpec(ModelKind.Logistic, Inputs: 1);
        using var registry = new ModelRegistry(spec);
        using var lease = registry.Acquire();
        registry.Publish(registry.CurrentParameters());
        registry.Publish(registry.CurrentParameters());
        var score = new float[1];
        lease.Snapshot.Score([1f], 1, score);
        Assert.Equal(1, lease.Snapshot.Version);
        Assert.Equal(3, registry.Version);
    }
}

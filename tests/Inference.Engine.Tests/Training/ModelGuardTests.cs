using System.Diagnostics.Metrics;
using Inference.Engine.Training;
using Inference.Models;
using Inference.Models.Parameters;
using Inference.Models.Registry;
using Inference.Models.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Inference.Engine.Tests;

/// <summary>The model guard's decisions (pure logic), and the lifecycle acting on them with a real registry and learner.</summary>
public sealed class ModelGuardTests
{
    [Fact]
    public void A_window_decides_only_once_full_and_by_the_margins()
    {
        var window = new PairedWindow();
        window.Add(99, loss: 99 * 0.5, otherLoss: 99 * 0.9);
        Assert.Equal(GuardDecision.None, window.ForCandidate(100, 0.01, 0.02, autoPromote: true));
        window.Add(1, 0.5, 0.9);
        Assert.Equal(GuardDecision.Withdraw, window.ForCandidate(100, 0.01, 0.02, autoPromote: true));

        var better = new PairedWindow();
        better.Add(100, 100 * 0.5, 100 * 0.45);
        Assert.Equal(GuardDecision.Promote, better.ForCandidate(100, 0.01, 0.02, autoPromote: true));
        Assert.Equal(GuardDecision.Advance, better.ForCandidate(100, 0.01, 0.02, autoPromote: false));
        Assert.Equal(GuardDecision.Advance, better.ForCandidate(100, 0.06, 0.02, autoPromote: true));

        var serving = new PairedWindow();
        serving.Add(100, 100 * 0.53, 100 * 0.5);
        Assert.Equal(GuardDecision.RollBack, serving.ForServing(100, 0.02));
        Assert.Equal(GuardDecision.Advance, serving.ForServing(100, 0.05));
    }

    [Fact]
    public void Canary_entities_are_the_share_asked_for_and_the_same_on_every_call()
    {
        int inside = Enumerable.Range(0, 100_000).Count(i => Canary.Answers(Kernels.Features.EntityKey.Hash($"user-{i}"), 0.1));
        Assert.InRange(inside, 9_500, 10_500);
        Assert.True(Canary.Answers(Kernels.Features.EntityKey.Hash("user-1"), 1.0));
        Assert.False(Canary.Answers(Kernels.Features.EntityKey.Hash("user-1"), 0.0));
    }

    [Fact]
    public async Task A_serving_model_worse_than_its_baseline_over_a_window_is_rolled_back_and_the_learner_goes_on_from_the_baseline()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var spec = new ModelSpec(ModelKind.Logistic, Inputs: 2);
        using var registry = new ModelRegistry(spec);
        using var learner = new OnlineLearner(spec, 0.1);
        var options = new TrainingOptions { GuardLabels = 64, RollbackMargin = 0.02 };
        var metrics = new LifecycleMetrics(services.GetRequiredService<IMeterFactory>());
        using var lifecycle = new ModelLifecycle(registry, options, metrics, NullLogger<ModelLifecycle>.Instance);
        var good = registry.CurrentParameters();
        double[] low = [.. Enumerable.Repeat(0.3, 32)], high = [.. Enumerable.Repeat(0.6, 32)];

        // The first observation makes the serving version the baseline; the learner then drifts and publishes.
        lifecycle.Observe(learner, registry.Version, 0, low, [], []);
        Assert.Equal(1, lifecycle.BaselineVersion);
        var drifted = new ParameterSet([.. good.Parameters.Select(p => p.Name.EndsWith("weight", StringComparison.Ordinal) ? p with { Values = [.. p.Values.Select(v => v + 3f)] } : p)]);
        learner.Import(drifted);
        long bad = registry.Publish(drifted);
        Assert.True(lifecycle.TryBaseline(bad, out var baseline));
        Assert.Equal(1, baseline.Version);

        lifecycle.Observe(learner, bad, 0, high, [], low);
        Assert.Equal(bad, registry.Version);
        lifecycle.Observe(learner, bad, 0, high, [], low);
        var rolledBack = registry.Find(registry.Version)!;
        Assert.Equal(ModelOrigin.Rollback, rolledBack.Origin);
        Assert.Equal(registry.Find(1)!.Id, rolledBack.Id);
        Assert.Equal(bad, rolledBack.Parent);
        Assert.Equal(1, metrics.RollBacks);
        Assert.True(learner.Export().ApproximatelyEquals(good));

        // By command: back to a version whose weights are kept; a version without them is refused.
        var again = await lifecycle.RollBackAsync(1);
        Assert.Equal(ModelOrigin.Rollback, again.Origin);
        await Assert.ThrowsAsync<InvalidOperationException>(() => lifecycle.RollBackAsync(999));
        await Assert.ThrowsAsync<InvalidOperationException>(lifecycle.PromoteAsync);
    }
}

using Inference.Models.Parameters;
using Inference.Models.Registry;

namespace Inference.Models.Tests;

/// <summary>The registry's lineage and candidate: content ids, parents and origins, kept weights, promotion, restarts.</summary>
public sealed class RegistryLineageTests
{
    private static readonly ModelSpec Spec = new(ModelKind.Logistic, Inputs: 2);

    private static ParameterSet Shifted(ParameterSet parameters, float by) =>
        new([.. parameters.Parameters.Select(p => p.Name.EndsWith("weight", StringComparison.Ordinal) ? p with { Values = [.. p.Values.Select(v => v + by)] } : p)]);

    [Fact]
    public void Every_version_is_recorded_with_a_content_id_its_parent_and_how_it_was_made()
    {
        using var registry = new ModelRegistry(Spec);
        var seeded = registry.CurrentParameters();
        var first = registry.Find(1)!;
        Assert.Equal(ModelOrigin.Seeded, first.Origin);
        Assert.Equal(ModelVersion.ContentId(Spec.Kind, seeded), first.Id);
        Assert.Equal(16, first.Id.Length);

        long online = registry.Publish(Shifted(seeded, 0.5f));
        long same = registry.Publish(Shifted(seeded, 0.5f));
        Assert.Equal(registry.Find(online)!.Id, registry.Find(same)!.Id);
        Assert.NotEqual(first.Id, registry.Find(online)!.Id);
        Assert.Equal(online, registry.Find(same)!.Parent);
        Assert.Equal(ModelOrigin.Online, registry.Find(same)!.Origin);
        Assert.Equal([same, online, 1L], registry.History().Select(v => v.Version));
    }

    [Fact]
    public void A_candidate_takes_the_next_number_serves_only_when_promoted_and_keeps_its_id()
    {
        using var registry = new ModelRegistry(Spec);
        var file = Shifted(registry.CurrentParameters(), 2f);
        var candidate = registry.SetCandidate(file, CandidateMode.Canary, 0.1, autoPromote: false, "a file");
        Assert.Equal(2, candidate.Version.Version);
        Assert.Equal(1, registry.Version);
        Assert.True(registry.TryAcquireCandidate(out var lease, out var info));
        using (lease)
        {
            Assert.Equal(2, lease.Snapshot.Version);
            Assert.Equal(CandidateMode.Canary, info.Mode);
        }

        long online = registry.Publish(Shifted(registry.CurrentParameters(), 0.1f));
        Assert.Equal(3, online);
        var (promoted, parameters) = registry.Promote("by command")!.Value;
        Assert.Equal(4, promoted.Version);
        Assert.Equal(online, promoted.Parent);
        Assert.Equal(ModelOrigin.Promoted, promoted.Origin);
        Assert.Equal(candidate.Version.Id, promoted.Id);
        Assert.Same(file, parameters);
        Assert.Equal(4, registry.Version);
        Assert.Null(registry.Candidate);
        Assert.False(registry.TryAcquireCandidate(out _, out _));
        Assert.Null(registry.Promote("again"));
    }

    [Fact]
    public void Weights_are_kept_for_the_serving_version_the_pinned_one_and_the_newest_milestones_only()
    {
        using var registry = new ModelRegistry(Spec);
        var parameters = registry.CurrentParameters();
        long pinned = registry.Publish(Shifted(parameters, 1f));
        registry.Pin(pinned);
        for (int i = 0; i < 10; i++)
        {
            registry.Publish(Shifted(parameters, i));
        }
        Assert.NotNull(registry.Parameters(1));
        Assert.NotNull(registry.Parameters(pinned));
        Assert.NotNull(registry.Parameters(registry.Version));
        Assert.Null(registry.Parameters(registry.Version - 1));
        using (var frozen = registry.Freeze(pinned)!.Value)
        {
            var scores = new float[1];
            frozen.Snapshot.Score([1f, 1f], 1, scores);
            Assert.Equal(pinned, frozen.Snapshot.Version);
        }
        Assert.Null(registry.Freeze(registry.Version - 1));
    }

    [Fact]
    public void A_restored_lineage_goes_on_numbering_after_its_newest_version()
    {
        using var before = new ModelRegistry(Spec);
        var parameters = before.CurrentParameters();
        before.Publish(Shifted(parameters, 1f));
        before.Publish(Shifted(parameters, 2f), ModelOrigin.Rollback, "v1 again");
        var lineage = before.History();

        using var after = new ModelRegistry(Spec);
        after.Restore(lineage);
        long restored = after.Publish(Shifted(parameters, 2f), ModelOrigin.Restored);
        Assert.Equal(4, restored);
        Assert.Equal(lineage[0].Id, after.Find(restored)!.Id);
        Assert.Equal(3, after.Find(restored)!.Parent);
        Assert.Equal([4L, 3, 2, 1], after.History().Select(v => v.Version));
        Assert.Equal("v1 again", after.Find(3)!.Note);
    }
}

using Inference.Engine.Sync;
using Inference.Models;
using Inference.Models.Parameters;

namespace Inference.Engine.Tests;

/// <summary>How tensors spread over parameter-server shards (pure logic).</summary>
public sealed class ParameterPlacementTests
{
    private static NamedParameter Tensor(string name, params long[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        return new NamedParameter(name, shape, [.. Enumerable.Range(0, (int)count).Select(i => i * 0.5f + name.Length)]);
    }

    private static readonly ParameterSet Model = new(
    [
        Tensor(ScoringModule.InputMeanName, 7),
        Tensor(ScoringModule.InputScaleName, 7),
        Tensor("layers.hidden.weight", 64, 7),
        Tensor("layers.hidden.bias", 64),
        Tensor("layers.output.weight", 1, 64),
        Tensor("layers.output.bias", 1),
    ]);

    [Fact]
    public void A_large_tensor_is_cut_into_row_ranges_over_the_shards_and_joins_back_exactly()
    {
        var placement = new ParameterPlacement(shards: 3, maxPartValues: 70);
        var parts = placement.Split(Model);
        Assert.Equal(3, parts.Count);
        var names = parts.SelectMany(p => p.Parameters.Select(t => t.Name)).ToList();
        // 64 rows of 7 in ranges of 10 rows: 7 parts, spread over more than one shard.
        var ranges = names.Where(n => n.StartsWith("layers.hidden.weight@", StringComparison.Ordinal)).ToList();
        Assert.Equal(7, ranges.Count);
        Assert.Contains("layers.hidden.weight@60:64", ranges);
        Assert.True(parts.Count(p => p.Parameters.Any(t => ranges.Contains(t.Name))) > 1);
        Assert.Equal(names.Count, names.Distinct().Count());
        // The standardisation stays whole, together.
        var standardisation = parts[placement.StandardisationShard].Parameters.Select(t => t.Name).ToList();
        Assert.Contains(ScoringModule.InputMeanName, standardisation);
        Assert.Contains(ScoringModule.InputScaleName, standardisation);

        var joined = placement.Join(Model, parts.Reverse());
        Assert.Equal(Model.Parameters.Select(p => p.Name), joined.Parameters.Select(p => p.Name));
        Assert.True(Model.ApproximatelyEquals(joined));
    }

    [Fact]
    public void Placement_depends_only_on_names_and_a_missing_part_is_named()
    {
        var first = new ParameterPlacement(4);
        var second = new ParameterPlacement(4);
        foreach (var tensor in Model.Parameters)
        {
            Assert.Equal(first.ShardOf(tensor.Name), second.ShardOf(tensor.Name));
        }
        var parts = new ParameterPlacement(2, 70).Split(Model);
        var error = Assert.Throws<InvalidDataException>(() => new ParameterPlacement(2, 70).Join(Model, [parts[0]]));
        Assert.Contains("ParameterServer", error.Message);
    }
}

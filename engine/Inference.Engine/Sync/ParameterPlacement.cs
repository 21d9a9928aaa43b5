using System.Globalization;
using System.Text;
using Inference.Models;
using Inference.Models.Parameters;

namespace Inference.Engine.Sync;

/// <summary>
/// Where each tensor lives across the parameter-server shards: by a stable hash (32-bit FNV-1a) of its
/// name, the same in every worker and across restarts. A tensor of more than <see cref="MaxPartValues"/>
/// values is cut into ranges of rows (named <c>NAME@FIRST:END</c>), each placed by its own name, so one
/// large embedding or layer spreads over the shards. The standardisation (<c>input_mean</c>,
/// <c>input_scale</c>) stays whole on one shard, the one that merges the workers' input statistics.
/// </summary>
internal sealed class ParameterPlacement
{
    public const int DefaultMaxPartValues = 1 << 20;

    public ParameterPlacement(int shards, int maxPartValues = DefaultMaxPartValues)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shards, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPartValues, 1);
        Shards = shards;
        MaxPartValues = maxPartValues;
    }

    public int Shards { get; }

    public int MaxPartValues { get; }

    /// <summary>The shard holding the standardisation and merging the input statistics.</summary>
    public int StandardisationShard => ShardOf(ScoringModule.InputMeanName);

    public int ShardOf(string name)
    {
        uint hash = 2_166_136_261;
        foreach (byte b in Encoding.UTF8.GetBytes(name))
        {
            hash = (hash ^ b) * 16_777_619;
        }
        return (int)(hash % (uint)Shards);
    }

    /// <summary>The parts of <paramref name="parameters"/> each shard holds (one set per shard, in shard order).</summary>
    public IReadOnlyList<ParameterSet> Split(ParameterSet parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var parts = Enumerable.Range(0, Shards).Select(_ => new List<NamedParameter>()).ToArray();
        foreach (var tensor in parameters.Parameters)
        {
            if (tensor.Name is ScoringModule.InputMeanName or ScoringModule.InputScaleName)
            {
                parts[StandardisationShard].Add(tensor);
                continue;
            }
            foreach (var (name, first, end) in Ranges(tensor))
            {
                if (first < 0)
                {
                    parts[ShardOf(name)].Add(tensor);
                    continue;
                }
                long width = RowWidth(tensor.Shape);
                var shape = (long[])tensor.Shape.Clone();
                shape[0] = end - first;
                parts[ShardOf(name)].Add(new NamedParameter(name, shape, tensor.Values.AsSpan(checked((int)(first * width)), checked((int)((end - first) * width))).ToArray()));
            }
        }
        return [.. parts.Select(p => new ParameterSet(p))];
    }

    /// <summary>
    /// Puts the shards' parts back together in <paramref name="layout"/>'s order and shapes; throws
    /// <see cref="InvalidDataException"/> when a part is missing or of another size.
    /// </summary>
    public ParameterSet Join(ParameterSet layout, IEnumerable<ParameterSet> parts)
    {
        ArgumentNullException.ThrowIfNull(layout);
        var byName = new Dictionary<string, NamedParameter>(StringComparer.Ordinal);
        foreach (var tensor in parts.SelectMany(p => p.Parameters))
        {
            byName[tensor.Name] = tensor;
        }
        NamedParameter Part(string name, long values) =>
            byName.TryGetValue(name, out var part) && part.Values.Length == values ? part
                : throw new InvalidDataException($"The parameter servers hold no part '{name}' of {values} values: are the workers' Inference:Sync:ParameterServer lists the same, in the same order?");
        var joined = new List<NamedParameter>(layout.Parameters.Count);
        foreach (var tensor in layout.Parameters)
        {
            var values = new float[tensor.Values.Length];
            long width = RowWidth(tensor.Shape);
            foreach (var (name, first, end) in Ranges(tensor))
            {
                if (first < 0)
                {
                    Part(name, values.Length).Values.CopyTo(values, 0);
                }
                else
                {
                    Part(name, (end - first) * width).Values.CopyTo(values, first * width);
                }
            }
            joined.Add(new NamedParameter(tensor.Name, (long[])tensor.Shape.Clone(), values));
        }
        return new ParameterSet(joined);
    }

    /// <summary>A tensor's parts: its own name with first -1 when it stays whole, else one name per range of rows.</summary>
    private IEnumerable<(string Name, long First, long End)> Ranges(NamedParameter tensor)
    {
        long rows = tensor.Shape.Length == 0 ? 1 : tensor.Shape[0];
        if (tensor.Values.Length <= MaxPartValues || rows < 2 || tensor.Name is ScoringModule.InputMeanName or ScoringModule.InputScaleName)
        {
            yield return (tensor.Name, -1, -1);
            yield break;
        }
        long perPart = Math.Max(1, MaxPartValues / RowWidth(tensor.Shape));
        for (long first = 0; first < rows; first += perPart)
        {
            long end = Math.Min(rows, first + perPart);
            yield return (string.Create(CultureInfo.InvariantCulture, $"{tensor.Name}@{first}:{end}"), first, end);
        }
    }

    private static long RowWidth(long[] shape)
    {
        long width = 1;
        for (int d = 1; d < shape.Length; d++)
        {
            width *= shape[d];
        }
        return width;
    }
}

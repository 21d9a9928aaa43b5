namespace Inference.Models.Parameters;

/// <summary>One named tensor of a model, as a flat row-major float array.</summary>
public sealed record NamedParameter(string Name, long[] Shape, float[] Values);

/// <summary>A model's parameters by name, detached from any TorchSharp module (for publish and sync).</summary>
public sealed class ParameterSet
{
    public ParameterSet(IReadOnlyList<NamedParameter> parameters)
    {
        Parameters = parameters;
    }

    public IReadOnlyList<NamedParameter> Parameters { get; }

    public NamedParameter? Find(string name)
    {
        foreach (var parameter in Parameters)
        {
            if (parameter.Name == name)
            {
                return parameter;
            }
        }
        return null;
    }

    /// <summary>True when every value of every tensor is a finite number (a model fit to publish or push).</summary>
    public bool IsFinite()
    {
        foreach (var parameter in Parameters)
        {
            foreach (float value in parameter.Values)
            {
                if (!float.IsFinite(value))
                {
                    return false;
                }
            }
        }
        return true;
    }

    /// <summary>This minus <paramref name="other"/>, tensor by tensor; shapes must match.</summary>
    public ParameterSet Minus(ParameterSet other) => Combine(other, -1f);

    /// <summary>Every value times <paramref name="factor"/>.</summary>
    public ParameterSet Scaled(float factor) =>
        new([.. Parameters.Select(p => new NamedParameter(p.Name, (long[])p.Shape.Clone(), [.. p.Values.Select(v => v * factor)]))]);

    /// <summary>This plus <paramref name="other"/>, tensor by tensor; shapes must match.</summary>
    public ParameterSet Plus(ParameterSet other) => Combine(other, 1f);

    /// <summary>True when every tensor matches by name and shape and every value within <paramref name="tolerance"/>.</summary>
    public bool ApproximatelyEquals(ParameterSet other, float tolerance = 0f)
    {
        if (other.Parameters.Count != Parameters.Count)
        {
            return false;
        }
        foreach (var mine in Parameters)
        {
            var theirs = other.Find(mine.Name);
            if (theirs is null || !mine.Shape.AsSpan().SequenceEqual(theirs.Shape) || theirs.Values.Length != mine.Values.Length)
            {
                return false;
            }
            for (int i = 0; i < mine.Values.Length; i++)
            {
                if (!(Math.Abs(mine.Values[i] - theirs.Values[i]) <= tolerance))
                {
                    return false;
                }
            }
        }
        return true;
    }

    private ParameterSet Combine(ParameterSet other, float sign)
    {
        var result = new List<NamedParameter>(Parameters.Count);
        foreach (var mine in Parameters)
        {
            var theirs = other.Find(mine.Name)
                ?? throw new ArgumentException($"Parameter '{mine.Name}' is missing from the other set.", nameof(other));
            if (!mine.Shape.AsSpan().SequenceEqual(theirs.Shape))
            {
                throw new ArgumentException($"Parameter '{mine.Name}' has shape [{string.Join(',', theirs.Shape)}], expected [{string.Join(',', mine.Shape)}].", nameof(other));
            }
            var values = new float[mine.Values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = mine.Values[i] + sign * theirs.Values[i];
            }
            result.Add(new NamedParameter(mine.Name, (long[])mine.Shape.Clone(), values));
        }
        return new ParameterSet(result);
    }
}

using System.Globalization;
using System.Text;

namespace Inference.Demo;

/// <summary>
/// A synthetic event stream with a planted ground truth, for the demo, benchmarks and tests. Each
/// entity has a latent typical amount; its events carry amounts scattered around it; its labels are
/// drawn from a planted logistic model of log1p(typical amount), so a model over the engine's
/// per-entity mean can learn them and its log loss falls toward the planted model's.
/// </summary>
public sealed class SyntheticStream
{
    /// <summary>The planted model: P(label = 1) = sigmoid(Slope · (log1p(typical amount) − Centre)).</summary>
    public const double Slope = 3.0;
    public const double Centre = 3.9;

    private readonly Random _random;
    private readonly double[] _typicalAmount;
    private readonly string[] _keys;
    private long _timeMs;

    public SyntheticStream(int entities, long seed, long startTimeMs = 1_767_225_600_000)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(entities);
        _random = new Random(unchecked((int)seed));
        _typicalAmount = new double[entities];
        _keys = new string[entities];
        for (int i = 0; i < entities; i++)
        {
            // Log-normal typical amounts around e^3.9 ≈ 50.
            _typicalAmount[i] = Math.Exp(Centre + 0.9 * Gaussian());
            _keys[i] = $"user-{i:D6}";
        }
        _timeMs = startTimeMs;
    }

    public int Entities => _keys.Length;

    public string Key(int entity) => _keys[entity];

    /// <summary>The planted probability that this entity's label is 1.</summary>
    public double TrueProbability(int entity) =>
        1.0 / (1.0 + Math.Exp(-Slope * (Math.Log(1 + _typicalAmount[entity]) - Centre)));

    /// <summary>A random entity.</summary>
    public int NextEntity() => _random.Next(_keys.Length);

    /// <summary>The next event of the stream (time moves forward 0–9 ms per event); amounts have two decimals.</summary>
    public SyntheticEvent NextEvent(int? entity = null)
    {
        int e = entity ?? NextEntity();
        _timeMs += _random.Next(10);
        float amount = (float)Math.Round(_typicalAmount[e] * Math.Exp(0.3 * Gaussian()), 2);
        string json = string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{_keys[e]}\",\"ts\":{_timeMs},\"amount\":{amount:0.##}}}");
        return new SyntheticEvent(e, _timeMs, amount, Encoding.UTF8.GetBytes(json));
    }

    /// <summary>A label for the entity drawn from the planted model.</summary>
    public SyntheticLabel NextLabel(int entity)
    {
        int label = _random.NextDouble() < TrueProbability(entity) ? 1 : 0;
        string json = string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{_keys[entity]}\",\"ts\":{_timeMs},\"label\":{label}}}");
        return new SyntheticLabel(entity, label, Encoding.UTF8.GetBytes(json));
    }

    private double Gaussian()
    {
        double u1 = 1.0 - _random.NextDouble();
        double u2 = _random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}

public readonly record struct SyntheticEvent(int Entity, long TimeMs, float Amount, byte[] Json);

public readonly record struct SyntheticLabel(int Entity, int Label, byte[] Json);

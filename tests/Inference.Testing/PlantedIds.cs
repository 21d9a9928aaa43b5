using System.Globalization;
using System.Text;

namespace Inference.Testing;

/// <summary>One label of the planted workload: who, which item, the planted probability and the drawn label.</summary>
public readonly record struct PlantedLabel(int User, int Item, double Probability, int Label, long TimeMs, byte[] Json);

/// <summary>One event of the planted workload: a user's payment.</summary>
public readonly record struct PlantedEvent(int User, long TimeMs, float Amount, byte[] Json);

/// <summary>
/// A workload where the ids carry the signal, with a known truth: users and items each have a planted
/// vector (dimension 8), a user has a typical payment amount, and a label of (user, item) is 1 with
/// probability sigmoid(user · item + Slope · (log1p(typical amount) − Centre)). Users and items are drawn
/// by Zipf's law (the head user holds several percent of the labels, as real streams do), events before
/// labels give each user its aggregates. The planted model's log loss is the floor any learner is
/// measured against; a model over the aggregates alone cannot see the user · item term.
/// </summary>
public sealed class PlantedIds
{
    public const int Dimension = 8;
    public const double Slope = 1.5;
    public const double Centre = 3.9;

    private readonly Random _random;
    private readonly float[] _users;
    private readonly float[] _items;
    private readonly double[] _typical;
    private readonly double[] _userCdf;
    private readonly double[] _itemCdf;
    private long _timeMs;

    /// <param name="users">Distinct users.</param>
    /// <param name="items">Distinct items.</param>
    /// <param name="seed">The seed of the planted vectors and of every draw.</param>
    /// <param name="zipf">Zipf's exponent of the users' and items' shares of the labels (0: uniform).</param>
    /// <param name="scale">The planted vectors' standard deviation per coordinate.</param>
    public PlantedIds(int users, int items, int seed, double zipf = 1.0, double scale = 0.75)
    {
        _random = new Random(seed);
        _users = Vectors(users, scale);
        _items = Vectors(items, scale);
        _typical = new double[users];
        for (int u = 0; u < users; u++)
        {
            _typical[u] = Math.Exp(3.9 + 0.8 * Gaussian());
        }
        _userCdf = Cdf(users, zipf);
        _itemCdf = Cdf(items, zipf);
        _timeMs = 1_767_225_600_000;
    }

    public int Users => _typical.Length;

    public int Items => _itemCdf.Length;

    public static string UserKey(int user) => $"u-{user}";

    public static string ItemKey(int item) => $"i-{item}";

    /// <summary>The planted probability that (user, item) is labelled 1.</summary>
    public double Probability(int user, int item)
    {
        double logit = Slope * (Math.Log(1 + _typical[user]) - Centre);
        for (int d = 0; d < Dimension; d++)
        {
            logit += _users[user * Dimension + d] * _items[item * Dimension + d];
        }
        return 1 / (1 + Math.Exp(-logit));
    }

    /// <summary>An event of <paramref name="user"/>: a payment around its typical amount (time moves 1 ms per event).</summary>
    public PlantedEvent NextEvent(int user)
    {
        float amount = (float)Math.Round(_typical[user] * Math.Exp(0.3 * Gaussian()), 2);
        long time = ++_timeMs;
        string json = string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{UserKey(user)}\",\"ts\":{time},\"amount\":{amount:0.##}}}");
        return new PlantedEvent(user, time, amount, Encoding.UTF8.GetBytes(json));
    }

    /// <summary>The next label: a user and an item drawn by their shares, the label drawn from the planted probability.</summary>
    public PlantedLabel NextLabel()
    {
        int user = Draw(_userCdf);
        int item = Draw(_itemCdf);
        double p = Probability(user, item);
        int label = _random.NextDouble() < p ? 1 : 0;
        long time = ++_timeMs;
        string json = string.Create(CultureInfo.InvariantCulture,
            $"{{\"entity\":\"{UserKey(user)}\",\"ts\":{time},\"label\":{label},\"item\":\"{ItemKey(item)}\"}}");
        return new PlantedLabel(user, item, p, label, time, Encoding.UTF8.GetBytes(json));
    }

    /// <summary>Log loss of probability <paramref name="p"/> for <paramref name="label"/> (clamped as the engine's).</summary>
    public static double LogLoss(double p, int label)
    {
        p = Math.Clamp(p, 1e-7, 1 - 1e-7);
        return -(label * Math.Log(p) + (1 - label) * Math.Log(1 - p));
    }

    private float[] Vectors(int count, double scale)
    {
        var vectors = new float[count * Dimension];
        for (int i = 0; i < vectors.Length; i++)
        {
            vectors[i] = (float)(scale * Gaussian());
        }
        return vectors;
    }

    /// <summary>Zipf's cumulative shares over <paramref name="count"/> ranks.</summary>
    private static double[] Cdf(int count, double exponent)
    {
        var cdf = new double[count];
        double total = 0;
        for (int i = 0; i < count; i++)
        {
            total += 1 / Math.Pow(i + 1, exponent);
            cdf[i] = total;
        }
        for (int i = 0; i < count; i++)
        {
            cdf[i] /= total;
        }
        return cdf;
    }

    private int Draw(double[] cdf)
    {
        int at = Array.BinarySearch(cdf, _random.NextDouble());
        return Math.Min(at < 0 ? ~at : at, cdf.Length - 1);
    }

    private double Gaussian()
    {
        double u1 = 1.0 - _random.NextDouble();
        double u2 = _random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}

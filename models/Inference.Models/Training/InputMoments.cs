namespace Inference.Models.Training;

/// <summary>
/// Running statistics of the model inputs: rows seen, per input the sum and the sum of squares. They
/// add: the statistics of two workers' data together are their sums (the exact parallel combination
/// of means and variances), which is how the parameter server merges them, never like weights.
/// </summary>
public sealed record InputMoments(double Rows, double[] Sums, double[] SumsOfSquares)
{
    public static InputMoments Empty(int inputs) => new(0, new double[inputs], new double[inputs]);

    public InputMoments Plus(InputMoments other) => Combine(other, 1);

    public InputMoments Minus(InputMoments other) => Combine(other, -1);

    /// <summary>Per input the mean and the scale (1 / standard deviation; 1 for a constant input), as the model standardises.</summary>
    public (float[] Mean, float[] Scale) Standardisation()
    {
        int width = Sums.Length;
        var mean = new float[width];
        var scale = new float[width];
        for (int c = 0; c < width; c++)
        {
            (mean[c], scale[c]) = Standardise(Rows, Sums[c], SumsOfSquares[c]);
        }
        return (mean, scale);
    }

    /// <summary>One input's mean and scale from its rows, sum and sum of squares.</summary>
    public static (float Mean, float Scale) Standardise(double rows, double sum, double sumOfSquares)
    {
        if (rows <= 0)
        {
            return (0f, 1f);
        }
        double mean = sum / rows;
        double variance = Math.Max(0, sumOfSquares / rows - mean * mean);
        // A constant column (variance ~0) is centred and left unscaled.
        return ((float)mean, variance > 1e-8 ? (float)(1 / Math.Sqrt(variance)) : 1f);
    }

    private InputMoments Combine(InputMoments other, double sign)
    {
        if (other.Sums.Length != Sums.Length)
        {
            throw new ArgumentException($"Statistics of {other.Sums.Length} inputs cannot combine with statistics of {Sums.Length}.", nameof(other));
        }
        var sums = new double[Sums.Length];
        var squares = new double[Sums.Length];
        for (int c = 0; c < sums.Length; c++)
        {
            sums[c] = Sums[c] + sign * other.Sums[c];
            squares[c] = SumsOfSquares[c] + sign * other.SumsOfSquares[c];
        }
        return new InputMoments(Rows + sign * other.Rows, sums, squares);
    }
}

namespace Inference.Engine.Pipeline;

/// <summary>Checks that input cannot carry NaN or infinity into state (decoders, the trainer).</summary>
internal static class Finite
{
    public static bool All(ReadOnlySpan<float> values)
    {
        foreach (float value in values)
        {
            if (!float.IsFinite(value))
            {
                return false;
            }
        }
        return true;
    }
}

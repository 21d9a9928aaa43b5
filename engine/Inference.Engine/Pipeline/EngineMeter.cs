namespace Inference.Engine.Pipeline;

/// <summary>The meter every stage's instruments belong to, as a Prometheus or OpenTelemetry setup names it.</summary>
internal static class EngineMeter
{
    public const string Name = "Inference";
}

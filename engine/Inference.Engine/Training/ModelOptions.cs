using Inference.Models;

namespace Inference.Engine.Training;

/// <summary>The model the trainer learns and serving scores with, section <c>Inference:Model</c>.</summary>
public sealed class ModelOptions
{
    public const string Section = "Inference:Model";

    public const int DefaultHidden = 16;
    public const long DefaultSeed = 17;

    public ModelKind Kind { get; set; } = ModelKind.Logistic;

    public int Hidden { get; set; } = DefaultHidden;

    /// <summary>Features each score request row brings, appended after the entity features.</summary>
    public int RequestFeatures { get; set; }

    public long Seed { get; set; } = DefaultSeed;

    public int IntraOpThreads { get; set; } = TorchRuntime.DefaultIntraOpThreads;
}

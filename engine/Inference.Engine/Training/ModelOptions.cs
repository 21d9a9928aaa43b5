using Inference.Engine.Features;
using Inference.Models;

namespace Inference.Engine.Training;

/// <summary>The model the trainer learns and serving scores with, section <c>Inference:Model</c>.</summary>
public sealed class ModelOptions
{
    public const string Section = "Inference:Model";

    public const int DefaultHidden = 16;
    public const long DefaultSeed = 17;

    public ModelKind Kind { get; set; } = ModelKind.Logistic;

    /// <summary>
    /// A model trained elsewhere to start from: a PyTorch <c>state_dict</c> saved by <c>torch.save</c>,
    /// or a .safetensors file (<c>inference model import FILE</c> checks one). Its tensors decide the
    /// kind and hidden units; it must take the engine's inputs. When a checkpoint or the parameter server already
    /// holds weights, the start stops naming the conflict, unless <see cref="FileWins"/>.
    /// </summary>
    public string? File { get; set; }

    /// <summary>
    /// With <see cref="File"/>: the file's weights serve and learn on even when a restored checkpoint or the parameter
    /// server holds others (the checkpoint's label offsets and lineage still apply; a pool takes the file up through
    /// this worker's first push). Switch <c>--model-wins</c>.
    /// </summary>
    public bool FileWins { get; set; }

    public int Hidden { get; set; } = DefaultHidden;

    /// <summary>Features each score request row brings, appended after the entity features.</summary>
    public int RequestFeatures { get; set; }

    /// <summary>
    /// Id inputs of the models over ids (<see cref="ModelKind.EmbeddingMlp"/>, <see cref="ModelKind.DotProduct"/>),
    /// in model-input order: one embedding table each.
    /// </summary>
    public List<IdInputOptions> Ids { get; set; } = [];

    public long Seed { get; set; } = DefaultSeed;

    public int IntraOpThreads { get; set; } = TorchRuntime.DefaultIntraOpThreads;
}

using System.Collections;
using System.Globalization;
using Inference.Models.Parameters;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Inference.Models.Exchange;

/// <summary>How a model file is encoded.</summary>
public enum ModelFileFormat
{
    /// <summary>A <c>state_dict</c> saved by <c>torch.save</c> (zip archive with a pickle): .pt, .pth, .bin.</summary>
    PyTorch,

    /// <summary>The safetensors format: .safetensors.</summary>
    Safetensors,
}

/// <summary>What a model file holds, in the engine's terms.</summary>
/// <param name="Spec">The model's shape, read off the tensors' shapes.</param>
/// <param name="Parameters">Every parameter of <see cref="ScoringModule"/>, by its name there.</param>
/// <param name="HasStandardisation">Whether the file carried <c>input_mean</c> and <c>input_scale</c> (else: the identity).</param>
/// <param name="Format">How the file was encoded.</param>
/// <param name="Layout">"engine names" or "nn.Sequential" (keys 0.*, 2.*): how its tensors were named.</param>
public sealed record ModelFileContents(ModelSpec Spec, ParameterSet Parameters, bool HasStandardisation, ModelFileFormat Format, string Layout)
{
    /// <summary>Weights and biases (the standardisation not counted).</summary>
    public long TrainableCount => Parameters.Parameters
        .Where(p => p.Name is not ScoringModule.InputMeanName and not ScoringModule.InputScaleName)
        .Sum(p => (long)p.Values.Length);
}

/// <summary>
/// Model exchange with PyTorch: reads a model trained in PyTorch (a <c>state_dict</c> saved by
/// <c>torch.save</c>, or safetensors) into the engine's model, and writes the engine's model in a form
/// <c>torch.load</c> (or safetensors) reads back. Files are read with TorchSharp.PyBridge, which reads
/// tensors and plain containers only: a whole pickled <c>nn.Module</c> (arbitrary Python classes) is
/// refused, never executed. The names are <see cref="ScoringModule"/>'s (python/inference_model.py is
/// the same model in PyTorch); a plain <c>nn.Sequential</c> of one linear layer, or linear → ReLU →
/// linear, is read too.
/// </summary>
public static class ModelFile
{
    // The layers' parameter prefixes, short here where every check names them.
    private const string Linear = ScoringModule.LinearPrefix;
    private const string Hidden = ScoringModule.HiddenPrefix;
    private const string Output = ScoringModule.OutputPrefix;

    /// <summary>Where training checkpoints commonly keep the model's state_dict.</summary>
    private static readonly string[] NestedKeys = ["state_dict", "model_state_dict", "model", "state"];

    public static ModelFileFormat FormatOf(string path) =>
        string.Equals(Path.GetExtension(path), ".safetensors", StringComparison.OrdinalIgnoreCase) ? ModelFileFormat.Safetensors : ModelFileFormat.PyTorch;

    /// <summary>Reads and checks a model file; <see cref="InvalidDataException"/> says what is wrong with it.</summary>
    public static ModelFileContents Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"No model file at {path}.", path);
        }
        TorchRuntime.EnsureLoaded();
        var format = FormatOf(path);
        using var scope = NewDisposeScope();
        var tensors = new Dictionary<string, NamedParameter>(StringComparer.Ordinal);
        foreach (var (name, tensor) in Load(path, format))
        {
            if (!tensor.is_floating_point())
            {
                throw new InvalidDataException($"{path}: tensor '{name}' holds {tensor.dtype}, not floating-point numbers.");
            }
            var values = tensor.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
            tensors[name] = new NamedParameter(name, tensor.shape, values);
        }
        return Interpret(path, tensors, format);
    }

    /// <summary>
    /// Writes <paramref name="parameters"/> (a <see cref="ScoringModule"/>'s, by its names) to
    /// <paramref name="path"/>, encoded by its extension (.safetensors, else torch.save's format);
    /// written to a temporary file first, so a reader never sees half a model.
    /// </summary>
    public static void Write(string path, ParameterSet parameters)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(parameters);
        TorchRuntime.EnsureLoaded();
        string full = Path.GetFullPath(path);
        string temporary = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        using (var scope = NewDisposeScope())
        {
            var state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (var parameter in parameters.Parameters)
            {
                state[parameter.Name] = tensor(parameter.Values, parameter.Shape);
            }
            try
            {
                if (FormatOf(path) == ModelFileFormat.Safetensors)
                {
                    Safetensors.SaveStateDict(temporary, state);
                }
                else
                {
                    PyTorchPickler.PickleStateDict(temporary, state);
                }
                File.Move(temporary, full, overwrite: true);
            }
            finally
            {
                File.Delete(temporary);
            }
        }
    }

    private static IEnumerable<(string Name, Tensor Tensor)> Load(string path, ModelFileFormat format)
    {
        try
        {
            if (format == ModelFileFormat.Safetensors)
            {
                return Safetensors.LoadStateDict(path).Select(pair => (pair.Key, pair.Value)).ToList();
            }
            IDictionary table = PyTorchUnpickler.UnpickleStateDict(path);
            // A training checkpoint saved as {"model_state_dict": ..., "epoch": ...}: its model's tensors.
            if (NestedKeys.FirstOrDefault(k => table[k] is IDictionary) is { } key
                && table.Values.Cast<object?>().Any(v => v is not Tensor))
            {
                table = (IDictionary)table[key]!;
            }
            var result = new List<(string, Tensor)>();
            foreach (DictionaryEntry entry in table)
            {
                if (entry.Key is not string name || entry.Value is not Tensor value)
                {
                    throw new InvalidDataException($"{path}: entry '{entry.Key}' is a {entry.Value?.GetType().Name ?? "null"}, not a tensor: save the model's state_dict() (a dict of tensors).");
                }
                result.Add((name, value));
            }
            return result;
        }
        catch (Exception error) when (error is not InvalidDataException)
        {
            throw new InvalidDataException(format == ModelFileFormat.Safetensors
                ? $"{path} is not a readable safetensors file: {error.Message}"
                : $"{path} is not a state_dict saved by torch.save (save model.state_dict(), not the model object): {error.Message}", error);
        }
    }

    private static ModelFileContents Interpret(string path, Dictionary<string, NamedParameter> tensors, ModelFileFormat format)
    {
        // Saved from a DataParallel / DistributedDataParallel wrapper: every name starts with "module.".
        if (tensors.Count > 0 && tensors.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal)))
        {
            tensors = tensors.Values.ToDictionary(t => t.Name["module.".Length..], t => t with { Name = t.Name["module.".Length..] }, StringComparer.Ordinal);
        }
        string layout = "engine names";
        if (tensors.ContainsKey("0.weight"))
        {
            // A plain nn.Sequential: Linear, or Linear → ReLU → Linear (the ReLU has no tensors).
            var renamed = new Dictionary<string, NamedParameter>(StringComparer.Ordinal);
            bool mlp = tensors.ContainsKey("2.weight");
            foreach (var (name, value) in tensors)
            {
                string engineName = name switch
                {
                    "0.weight" => (mlp ? Hidden : Linear) + "weight",
                    "0.bias" => (mlp ? Hidden : Linear) + "bias",
                    "2.weight" => Output + "weight",
                    "2.bias" => Output + "bias",
                    _ => throw new InvalidDataException($"{path}: '{name}' is not part of a Linear or Linear → ReLU → Linear nn.Sequential."),
                };
                renamed[engineName] = value with { Name = engineName };
            }
            tensors = renamed;
            layout = "nn.Sequential";
        }

        var names = new List<string>();
        ModelSpec spec;
        if (tensors.ContainsKey(Linear + "weight"))
        {
            var weight = Require(path, tensors, Linear + "weight", rank: 2);
            if (weight.Shape[0] != 1)
            {
                throw new InvalidDataException($"{path}: {Linear}weight has shape {Shape(weight.Shape)}; the model has one output, so [1, inputs].");
            }
            int inputs = checked((int)weight.Shape[1]);
            RequireShape(path, tensors, Linear + "bias", [1]);
            names.AddRange([Linear + "weight", Linear + "bias"]);
            spec = new ModelSpec(ModelKind.Logistic, inputs);
        }
        else if (tensors.ContainsKey(Hidden + "weight"))
        {
            var weight = Require(path, tensors, Hidden + "weight", rank: 2);
            int hidden = checked((int)weight.Shape[0]);
            int inputs = checked((int)weight.Shape[1]);
            RequireShape(path, tensors, Hidden + "bias", [hidden]);
            RequireShape(path, tensors, Output + "weight", [1, hidden]);
            RequireShape(path, tensors, Output + "bias", [1]);
            names.AddRange([Hidden + "weight", Hidden + "bias", Output + "weight", Output + "bias"]);
            spec = new ModelSpec(ModelKind.Mlp, inputs, hidden);
        }
        else
        {
            throw new InvalidDataException($"{path} holds no model the engine knows: expected {Linear}weight (Logistic) or {Hidden}weight (Mlp), "
                + $"or a plain nn.Sequential (0.weight …); found {string.Join(", ", tensors.Keys.Order(StringComparer.Ordinal))}.");
        }
        if (spec.Inputs < 1)
        {
            throw new InvalidDataException($"{path}: the model has no inputs.");
        }

        bool hasMean = tensors.ContainsKey(ScoringModule.InputMeanName);
        bool hasScale = tensors.ContainsKey(ScoringModule.InputScaleName);
        if (hasMean != hasScale)
        {
            throw new InvalidDataException($"{path}: {(hasMean ? ScoringModule.InputMeanName : ScoringModule.InputScaleName)} without {(hasMean ? ScoringModule.InputScaleName : ScoringModule.InputMeanName)}: give both or neither.");
        }
        if (hasMean)
        {
            RequireShape(path, tensors, ScoringModule.InputMeanName, [spec.Inputs]);
            RequireShape(path, tensors, ScoringModule.InputScaleName, [spec.Inputs]);
        }
        else
        {
            tensors[ScoringModule.InputMeanName] = new NamedParameter(ScoringModule.InputMeanName, [spec.Inputs], new float[spec.Inputs]);
            tensors[ScoringModule.InputScaleName] = new NamedParameter(ScoringModule.InputScaleName, [spec.Inputs], Enumerable.Repeat(1f, spec.Inputs).ToArray());
        }
        // The order ScoringModule (and PyTorch's state_dict of python/inference_model.py) lists them in.
        names.InsertRange(0, [ScoringModule.InputMeanName, ScoringModule.InputScaleName]);

        var unknown = tensors.Keys.Except(names, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
        {
            throw new InvalidDataException($"{path}: {string.Join(", ", unknown)} {(unknown.Count == 1 ? "is" : "are")} not part of a {spec.Kind} model ({string.Join(", ", names)}).");
        }
        var parameters = new ParameterSet(names.Select(n => tensors[n]).ToList());
        foreach (var parameter in parameters.Parameters)
        {
            int bad = Array.FindIndex(parameter.Values, v => !float.IsFinite(v));
            if (bad >= 0)
            {
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"{path}: {parameter.Name}[{bad}] is {parameter.Values[bad]}; every value must be a finite number."));
            }
        }
        return new ModelFileContents(spec, parameters, hasMean, format, layout);
    }

    private static NamedParameter Require(string path, Dictionary<string, NamedParameter> tensors, string name, int rank)
    {
        if (!tensors.TryGetValue(name, out var value))
        {
            throw new InvalidDataException($"{path}: {name} is missing.");
        }
        if (value.Shape.Length != rank)
        {
            throw new InvalidDataException($"{path}: {name} has shape {Shape(value.Shape)}; it must have {rank} dimensions.");
        }
        return value;
    }

    private static void RequireShape(string path, Dictionary<string, NamedParameter> tensors, string name, long[] shape)
    {
        var value = Require(path, tensors, name, shape.Length);
        if (!value.Shape.AsSpan().SequenceEqual(shape))
        {
            throw new InvalidDataException($"{path}: {name} has shape {Shape(value.Shape)}; this model needs {Shape(shape)}.");
        }
    }

    private static string Shape(long[] shape) => $"[{string.Join(", ", shape)}]";
}

using System.Globalization;
using Grpc.Core;
using Inference.Engine.Checkpoints;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Engine.Training;
using Inference.Models;
using Inference.Models.Exchange;
using Inference.Models.Parameters;
using Inference.Proto.V1;
using Microsoft.Extensions.Options;

namespace Inference.Host;

/// <summary>
/// <c>inference model import FILE</c> and <c>inference model export FILE</c>: model exchange with PyTorch
/// (a <c>state_dict</c> saved by <c>torch.save</c>, or safetensors, by the file's extension).
/// </summary>
internal static class ModelCommand
{
    // The deadline of `model export`'s GetModel call.
    private const int ExportTimeoutSeconds = 30;

    /// <summary>Reads and checks a model file; prints the model it holds and how to start the engine from it.</summary>
    public static int Import(string file)
    {
        if (TryRead(file) is not { } contents)
        {
            return 1;
        }
        var spec = contents.Spec;
        var c = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Create(c, $"{file}: {(spec.Kind == ModelKind.Mlp ? "an" : "a")} {spec.Kind} model the engine can load ({contents.Format}, {contents.Layout})"));
        Console.WriteLine(string.Create(c, $"  inputs          {spec.Inputs} (the declared features in order, then the request features)"));
        if (spec.Kind == ModelKind.Mlp)
        {
            Console.WriteLine(string.Create(c, $"  hidden units    {spec.Hidden}"));
        }
        Console.WriteLine(string.Create(c, $"  weights         {contents.TrainableCount:N0} values in {contents.Parameters.Parameters.Count - 2} tensors, all finite"));
        Console.WriteLine(contents.HasStandardisation
            ? "  standardisation input_mean and input_scale from the file"
            : "  standardisation none in the file: the identity (input_mean 0, input_scale 1)");
        foreach (var parameter in contents.Parameters.Parameters)
        {
            Console.WriteLine(string.Create(c, $"  tensor          {parameter.Name,-22} [{string.Join(", ", parameter.Shape)}]"));
        }
        Console.WriteLine($"Start the engine from it: inference serve --model {file}   (Inference:Model:File)");
        return 0;
    }

    /// <summary>Reads a model file as the engine would load it; null (the reason printed) when it cannot be read or is not such a model.</summary>
    public static ModelFileContents? TryRead(string file)
    {
        try
        {
            return ModelFile.Read(file);
        }
        catch (Exception error) when (error is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"inference: {error.Message}");
            return null;
        }
    }

    /// <summary>Writes the serving model of a running engine, or the newest valid checkpoint's, for PyTorch.</summary>
    public static async Task<int> ExportAsync(string file, string? from, string? checkpoints, ClientSecurityOptions client)
    {
        if ((from is null) == (checkpoints is null))
        {
            Console.Error.WriteLine("inference: model export needs exactly one of --from ADDRESS (a running engine) and --checkpoints DIR.");
            return 2;
        }
        ParameterSet parameters;
        string source;
        TrainerCheckpoint? withIds = null;
        try
        {
            (parameters, source, withIds) = from is not null ? await FromEngineAsync(from, client) : FromCheckpoints(checkpoints!);
        }
        catch (ExportException error)
        {
            Console.Error.WriteLine($"inference: {error.Message}");
            return 1;
        }
        try
        {
            if (withIds is not null)
            {
                Console.WriteLine($"{IdModelExport.Write(file, withIds)}, from {source} (in Python: inference_model.load_with_ids(\"{file}\"))");
                return 0;
            }
            ModelFile.Write(file, parameters);
            // Read back as an import would: what was written is a model the engine (and PyTorch) can load.
            var written = ModelFile.Read(file);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{file}: {written.Spec.Kind} model over {written.Spec.Inputs} inputs from {source} ({written.Format}; in Python: inference_model.load(\"{file}\"))"));
            return 0;
        }
        catch (Exception error) when (error is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"inference: cannot write {file}: {error.Message}");
            return 1;
        }
    }

    private static async Task<(ParameterSet, string, TrainerCheckpoint?)> FromEngineAsync(string address, ClientSecurityOptions client)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ExportException($"--from must be the engine's gRPC address, e.g. http://127.0.0.1:50051 (got '{address}').");
        }
        var channels = new EngineChannels(Options.Create(new SecurityOptions { Client = client }), ServingOptions.DefaultMaxMessageBytes);
        GetModelResponse response;
        try
        {
            using var channel = channels.Open(address);
            response = await new ScoringService.ScoringServiceClient(channel).GetModelAsync(new GetModelRequest(), channels.Headers, deadline: TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(ExportTimeoutSeconds));
        }
        catch (Exception error) when (error is System.Security.Cryptography.CryptographicException or IOException)
        {
            throw new ExportException($"--ca {client.Ca}: {error.Message}");
        }
        catch (RpcException error)
        {
            throw new ExportException($"the engine at {address} did not answer GetModel: {error.Status.StatusCode} {error.Status.Detail}");
        }
        if (response.Kind is nameof(ModelKind.EmbeddingMlp) or nameof(ModelKind.DotProduct))
        {
            throw new ExportException(NoTables(response.Kind));
        }
        var parameters = new ParameterSet(response.Tensors.Select(t => new NamedParameter(t.Name, [.. t.Shape], [.. t.Values])).ToList());
        return (parameters, string.Create(CultureInfo.InvariantCulture, $"the engine at {address}, model version {response.Version}"), null);
    }

    private static string NoTables(string kind) =>
        $"the engine's model is a {kind}: its embedding tables stay on the engine's accelerator, and its dense part alone would not score as the engine does; export it from the engine's checkpoints (--checkpoints DIR), which hold the tables.";

    private static (ParameterSet, string, TrainerCheckpoint?) FromCheckpoints(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new ExportException($"{directory} is not a directory.");
        }
        var candidates = File.Exists(Path.Combine(directory, CheckpointFiles.ManifestName))
            ? [directory]
            : CheckpointFiles.List(directory).Select(e => e.Path).Reverse().ToList();
        var reasons = new List<string>();
        foreach (string path in candidates)
        {
            try
            {
                var trainer = CheckpointFiles.ReadTrainer(path);
                if (trainer is null)
                {
                    reasons.Add($"{Path.GetFileName(path)}: no model (training was off)");
                    continue;
                }
                return (trainer.Learner.Parameters, $"checkpoint {path}", trainer.Embeddings is null ? null : trainer);
            }
            catch (Exception error) when (error is IOException or InvalidDataException or System.Text.Json.JsonException or UnauthorizedAccessException)
            {
                reasons.Add($"{Path.GetFileName(path)}: {error.Message}");
            }
        }
        throw new ExportException(candidates.Count == 0
            ? $"{directory} holds no checkpoints."
            : $"no checkpoint in {directory} holds a model that can be read: {string.Join("; ", reasons)}");
    }

    private sealed class ExportException(string message) : Exception(message);
}

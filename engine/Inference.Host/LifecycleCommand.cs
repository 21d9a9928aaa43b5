using System.Globalization;
using Grpc.Core;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Proto.V1;
using Microsoft.Extensions.Options;

namespace Inference.Host;

/// <summary>
/// <c>inference model load FILE --to ADDRESS</c>, <c>model promote</c>, <c>model rollback</c> and <c>model versions</c>:
/// the model lifecycle of a running engine over its ModelService (admin scope).
/// </summary>
internal static class LifecycleCommand
{
    private const int TimeoutSeconds = 60;

    /// <summary>Registers a model file as the candidate of the engine at <paramref name="to"/>, in shadow or as a canary.</summary>
    public static async Task<int> LoadAsync(string file, string to, double? canary, bool autoPromote, ClientSecurityOptions client)
    {
        if (ModelCommand.TryRead(file) is not { } contents)
        {
            return 1;
        }
        var request = new LoadCandidateRequest
        {
            Mode = canary is null ? CandidateMode.Shadow : CandidateMode.Canary,
            CanaryShare = canary ?? 0,
            AutoPromote = autoPromote,
            Source = $"{Path.GetFullPath(file)} ({contents.Format} {contents.Layout})",
        };
        foreach (var parameter in contents.Parameters.Parameters)
        {
            var tensor = new NamedTensor { Name = parameter.Name };
            tensor.Shape.Add(parameter.Shape);
            tensor.Values.Add(parameter.Values);
            request.Tensors.Add(tensor);
        }
        return await CallAsync(to, client, async (service, headers, deadline) =>
        {
            var status = await service.LoadCandidateAsync(request, headers, deadline);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{file}: candidate v{status.Version.Version} ({status.Version.Id}) on {to}, {(canary is null ? "in shadow" : $"a canary answering {canary:P1} of the entities")}{(autoPromote ? ", promoted when it validates better" : "")}"));
        });
    }

    /// <summary>Registers a second learner with other hyperparameters, over the same labels, as the candidate of the engine at <paramref name="to"/>.</summary>
    public static Task<int> LearnAsync(string to, double learningRate, string optimizer, double? canary, bool autoPromote, ClientSecurityOptions client) =>
        CallAsync(to, client, async (service, headers, deadline) =>
        {
            var request = new LoadCandidateRequest
            {
                Mode = canary is null ? CandidateMode.Shadow : CandidateMode.Canary,
                CanaryShare = canary ?? 0,
                AutoPromote = autoPromote,
                Learner = new CandidateLearner { LearningRate = learningRate, Optimizer = optimizer },
            };
            var status = await service.LoadCandidateAsync(request, headers, deadline);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"candidate learner v{status.Version.Version} ({status.Learner}) on {to}, {(canary is null ? "in shadow" : $"a canary answering {canary:P1} of the entities")}{(autoPromote ? ", promoted when it validates better" : "")}"));
        });

    public static Task<int> PromoteAsync(string to, ClientSecurityOptions client) =>
        CallAsync(to, client, async (service, headers, deadline) =>
            Console.WriteLine($"promoted: {Describe(await service.PromoteAsync(new PromoteRequest(), headers, deadline))}"));

    public static Task<int> WithdrawAsync(string to, ClientSecurityOptions client) =>
        CallAsync(to, client, async (service, headers, deadline) =>
            Console.WriteLine($"withdrawn: {Describe((await service.WithdrawCandidateAsync(new WithdrawCandidateRequest(), headers, deadline)).Version)}"));

    public static Task<int> RollBackAsync(string to, long version, ClientSecurityOptions client) =>
        CallAsync(to, client, async (service, headers, deadline) =>
            Console.WriteLine($"rolled back: {Describe(await service.RollBackAsync(new RollBackRequest { Version = version }, headers, deadline))}"));

    public static Task<int> VersionsAsync(string from, int limit, ClientSecurityOptions client) =>
        CallAsync(from, client, async (service, headers, deadline) =>
        {
            var list = await service.ListVersionsAsync(new ListVersionsRequest { Limit = limit }, headers, deadline);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"serving v{list.Serving}; guard baseline v{list.Baseline}; candidate {(list.Candidate.Present ? $"v{list.Candidate.Version.Version} ({list.Candidate.Mode})" : "none")}"));
            foreach (var version in list.Versions)
            {
                Console.WriteLine(Describe(version));
            }
        });

    private static string Describe(ModelVersionInfo v)
    {
        string figures = v.Figures is { } f ? string.Create(CultureInfo.InvariantCulture, $" labels {f.Labels} log loss {f.LogLoss:F4}") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"v{v.Version} {v.Id} {v.Origin,-9} parent v{v.Parent} {DateTimeOffset.FromUnixTimeMilliseconds(v.CreatedMs):u}{(v.WeightsKept ? " [weights kept]" : "")}{figures} — {v.Note}");
    }

    private static async Task<int> CallAsync(string address, ClientSecurityOptions client, Func<ModelService.ModelServiceClient, Metadata, DateTime, Task> call)
    {
        if (!Uri.TryCreate(address, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            Console.Error.WriteLine($"inference: the address must be the engine's gRPC address, e.g. http://127.0.0.1:50051 (got '{address}').");
            return 2;
        }
        var channels = new EngineChannels(Options.Create(new SecurityOptions { Client = client }), ServingOptions.DefaultMaxMessageBytes);
        try
        {
            using var channel = channels.Open(address);
            await call(new ModelService.ModelServiceClient(channel), channels.Headers, TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(TimeoutSeconds));
            return 0;
        }
        catch (Exception error) when (error is System.Security.Cryptography.CryptographicException or IOException)
        {
            Console.Error.WriteLine($"inference: --ca {client.Ca}: {error.Message}");
            return 1;
        }
        catch (RpcException error)
        {
            Console.Error.WriteLine($"inference: the engine at {address} refused: {error.Status.StatusCode} {error.Status.Detail}");
            return 1;
        }
    }
}

using System.Diagnostics;
using Inference.Engine.Hosting;
using Inference.Engine.Pipeline;
using Inference.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using YamlDotNet.RepresentationModel;

namespace Inference.Deployment.Tests;

/// <summary>
/// The deployment for GPU node pools (<c>deploy/</c>): the Helm chart renders to well-formed manifests
/// that wire a pool as the engine expects, and the Dockerfile's build step builds a runnable engine.
/// Neither Docker nor Kubernetes runs here; what they would add (pulling the CUDA base, scheduling on
/// GPU nodes, KEDA) waits for a cluster.
/// </summary>
public sealed class DeploymentTests
{
    private static string Chart => Path.Combine(Repository.Root, "deploy", "helm", "inference");

    /// <summary>Every rendered document, parsed, by kind and name.</summary>
    private static List<Dictionary<string, object?>> Manifests(IDictionary<string, object?>? overrides = null, IReadOnlyList<Dictionary<string, object?>>? cluster = null)
    {
        var manifests = new List<Dictionary<string, object?>>();
        foreach (var (template, output) in ChartRenderer.Render(Chart, "pool", overrides, cluster))
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(output));
            foreach (var document in stream.Documents)
            {
                if (ChartRenderer.FromYaml(document.RootNode) is Dictionary<string, object?> manifest)
                {
                    Assert.True(manifest.ContainsKey("apiVersion") && manifest.ContainsKey("kind"), $"{template}: a document without apiVersion or kind");
                    Assert.False(string.IsNullOrEmpty(Get<string>(manifest, "metadata.name")), $"{template}: a {manifest["kind"]} without a name");
                    manifests.Add(manifest);
                }
            }
        }
        return manifests;
    }

    private static T Get<T>(object? node, string path)
    {
        foreach (string part in path.Split('.'))
        {
            node = node switch
            {
                Dictionary<string, object?> map => map.GetValueOrDefault(part),
                List<object?> list => list[int.Parse(part, System.Globalization.CultureInfo.InvariantCulture)],
                _ => null,
            };
        }
        return node is T value ? value : throw new InvalidDataException($"{path} is {node?.GetType().Name ?? "missing"}, not {typeof(T).Name}");
    }

    private static Dictionary<string, object?> One(List<Dictionary<string, object?>> manifests, string kind, string name) =>
        Assert.Single(manifests, m => (string?)m["kind"] == kind && Get<string>(m, "metadata.name") == name);

    private static Dictionary<string, string> Env(Dictionary<string, object?> statefulSet) =>
        Get<List<object?>>(statefulSet, "spec.template.spec.containers.0.env").Cast<Dictionary<string, object?>>()
            .Where(e => e.ContainsKey("value")).ToDictionary(e => (string)e["name"]!, e => e["value"] switch { string s => s, var v => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture)! });

    private static List<Dictionary<string, object?>> SecretEnv(Dictionary<string, object?> statefulSet) =>
        [.. Get<List<object?>>(statefulSet, "spec.template.spec.containers.0.env").Cast<Dictionary<string, object?>>()
            .Where(e => e.GetValueOrDefault("valueFrom") is Dictionary<string, object?> from && from.ContainsKey("secretKeyRef"))];

    [Fact]
    public void The_chart_renders_workers_on_GPU_nodes_sharded_parameter_servers_a_Score_service_and_KEDA_on_lag()
    {
        var manifests = Manifests();
        Assert.Equal(["ScaledObject", "Secret", "Service", "Service", "Service", "StatefulSet", "StatefulSet"], manifests.Select(m => (string)m["kind"]!).Order());

        var workers = One(manifests, "StatefulSet", "pool-worker");
        Assert.Equal(3L, Get<long>(workers, "spec.replicas"));
        Assert.Equal("pool-workers", Get<string>(workers, "spec.serviceName"));
        var limits = Get<Dictionary<string, object?>>(workers, "spec.template.spec.containers.0.resources.limits");
        var requests = Get<Dictionary<string, object?>>(workers, "spec.template.spec.containers.0.resources.requests");
        Assert.Equal(1L, limits["nvidia.com/gpu"]);
        Assert.Equal(1L, requests["nvidia.com/gpu"]);
        Assert.Equal("4", Convert.ToString(requests["cpu"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("nvidia-h100-80gb", Get<Dictionary<string, object?>>(workers, "spec.template.spec.nodeSelector")["cloud.google.com/gke-accelerator"]);
        Assert.Equal("nvidia.com/gpu", Get<string>(workers, "spec.template.spec.tolerations.0.key"));
        Assert.Equal("checkpoints", Get<string>(workers, "spec.volumeClaimTemplates.0.metadata.name"));
        Assert.Equal("50Gi", Get<string>(workers, "spec.volumeClaimTemplates.0.spec.resources.requests.storage"));
        Assert.Equal("/healthz", Get<string>(workers, "spec.template.spec.containers.0.livenessProbe.httpGet.path"));
        Assert.Equal("/readyz", Get<string>(workers, "spec.template.spec.containers.0.readinessProbe.httpGet.path"));

        // The engine's settings as the workers get them: a pool of the two shards, each worker reachable by its pod name.
        var env = Env(workers);
        Assert.Equal("Worker", env["INFERENCE_Inference__Role"]);
        Assert.Equal("http://pool-ps-0.pool-ps:50052,http://pool-ps-1.pool-ps:50052", env["INFERENCE_Inference__Sync__ParameterServer"]);
        Assert.Equal("http://$(POD_NAME).pool-workers:50051", env["INFERENCE_Inference__Serving__AdvertisedAddress"]);
        Assert.Equal("Cuda", env["INFERENCE_Inference__Features__Accelerator"]);
        Assert.Equal("false", env["INFERENCE_Inference__Security__AnonymousScore"]);
        Assert.Equal("true", env["INFERENCE_Inference__Security__MetricsOpen"]);
        Assert.DoesNotContain(env.Keys, k => k.Contains("ScoreRequiresToken", StringComparison.Ordinal));
        var secrets = SecretEnv(workers);
        Assert.Equal(["INFERENCE_Inference__Security__Client__Token", "INFERENCE_Inference__Security__Tokens__0", "INFERENCE_Inference__Security__Tokens__1"],
            secrets.Select(e => (string)e["name"]!).Order());
        Assert.All(secrets, e => Assert.Equal("pool-token", Get<string>(e, "valueFrom.secretKeyRef.name")));
        // The second accepted token, for rotation: an optional key, absent except while a token is rotated.
        var second = Assert.Single(secrets, e => (string)e["name"]! == "INFERENCE_Inference__Security__Tokens__1");
        Assert.Equal("token-1", Get<string>(second, "valueFrom.secretKeyRef.key"));
        Assert.True(Get<bool>(second, "valueFrom.secretKeyRef.optional"));
        var token = Convert.FromBase64String(Get<string>(One(manifests, "Secret", "pool-token"), "data.token"));
        Assert.Equal(40, token.Length);
        Assert.All(token, b => Assert.True(char.IsAsciiLetterOrDigit((char)b), $"token byte {b} is not alphanumeric"));

        // Every engine key the chart sets is one the engine binds, with a value it accepts (the
        // configuration of a worker, checked as `serve` would at start: a bad key or value fails here).
        var settings = env.Where(e => e.Key.StartsWith("INFERENCE_", StringComparison.Ordinal))
            .ToDictionary(e => e.Key["INFERENCE_".Length..].Replace("__", ":", StringComparison.Ordinal), e => (string?)e.Value.Replace("$(POD_NAME)", "pool-worker-0", StringComparison.Ordinal));
        settings["Inference:Features:Accelerator"] = "Cpu"; // no GPU here; the chart's Cuda is checked above
        settings["Inference:Security:Tokens:0"] = "a-token-from-the-secret-0123456789";
        settings["Inference:Security:Client:Token"] = "a-token-from-the-secret-0123456789";
        settings["Inference:Checkpoints:Directory"] = Path.Combine(Path.GetTempPath(), "inference-chart-" + Guid.NewGuid().ToString("N"));
        using (var app = InferenceApplication.Build([], settings))
        {
            Assert.Equal(EngineRole.Worker, app.Services.GetRequiredService<IOptions<InferenceOptions>>().Value.Role);
        }

        var ps = One(manifests, "StatefulSet", "pool-ps");
        Assert.Equal(2L, Get<long>(ps, "spec.replicas"));
        Assert.Equal(["INFERENCE_Inference__Security__Tokens__0", "INFERENCE_Inference__Security__Tokens__1"], SecretEnv(ps).Select(e => (string)e["name"]!).Order());
        Assert.Equal("Ps", Env(ps)["INFERENCE_Inference__Role"]);
        Assert.Equal("/var/lib/inference/parameters", Env(ps)["INFERENCE_Inference__Checkpoints__Directory"]);
        Assert.Equal("parameters", Get<string>(ps, "spec.volumeClaimTemplates.0.metadata.name"));
        Assert.Equal("None", Get<string>(One(manifests, "Service", "pool-ps"), "spec.clusterIP"));
        Assert.Equal("None", Get<string>(One(manifests, "Service", "pool-workers"), "spec.clusterIP"));
        Assert.Equal(50051L, Get<long>(One(manifests, "Service", "pool"), "spec.ports.0.port"));

        var scaler = One(manifests, "ScaledObject", "pool-worker");
        Assert.Equal("keda.sh/v1alpha1", scaler["apiVersion"]);
        Assert.Equal("pool-worker", Get<string>(scaler, "spec.scaleTargetRef.name"));
        Assert.Equal("StatefulSet", Get<string>(scaler, "spec.scaleTargetRef.kind"));
        Assert.Equal("kafka", Get<string>(scaler, "spec.triggers.0.type"));
        Assert.Equal("inference", Get<string>(scaler, "spec.triggers.0.metadata.consumerGroup"));
        Assert.Equal("events", Get<string>(scaler, "spec.triggers.0.metadata.topic"));
        Assert.True(Get<long>(scaler, "spec.maxReplicaCount") <= 12, "never more workers than events partitions");
    }

    [Fact]
    public void The_charts_options_turn_off_KEDA_and_use_an_existing_token_secret()
    {
        var manifests = Manifests(new Dictionary<string, object?>
        {
            ["keda.enabled"] = false,
            ["security.existingTokenSecret"] = "team-token",
            ["parameterServer.shards"] = 3L,
        });
        Assert.DoesNotContain(manifests, m => (string?)m["kind"] is "ScaledObject" or "Secret");
        var workers = One(manifests, "StatefulSet", "pool-worker");
        Assert.Equal("http://pool-ps-0.pool-ps:50052,http://pool-ps-1.pool-ps:50052,http://pool-ps-2.pool-ps:50052", Env(workers)["INFERENCE_Inference__Sync__ParameterServer"]);
        Assert.All(SecretEnv(workers), e => Assert.Equal("team-token", Get<string>(e, "valueFrom.secretKeyRef.name")));
    }

    [Fact]
    public void An_upgrade_keeps_the_token_of_the_Secret_the_release_made_before()
    {
        string kept = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("kept-across-upgrades-0123456789abcdefghij"));
        Dictionary<string, object?> Secret(string name, string @namespace) => new()
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Secret",
            ["metadata"] = new Dictionary<string, object?> { ["name"] = name, ["namespace"] = @namespace },
            ["data"] = new Dictionary<string, object?> { ["token"] = kept },
        };

        var secret = One(Manifests(cluster: [Secret("pool-token", "default")]), "Secret", "pool-token");
        Assert.Equal(kept, Get<string>(secret, "data.token"));
        Assert.Equal("keep", Get<Dictionary<string, object?>>(secret, "metadata.annotations")["helm.sh/resource-policy"]);

        // Another release's Secret, or this name in another namespace, is not this release's: a new token.
        foreach (var other in new[] { Secret("other-token", "default"), Secret("pool-token", "staging") })
        {
            string made = Get<string>(One(Manifests(cluster: [other]), "Secret", "pool-token"), "data.token");
            Assert.NotEqual(kept, made);
            Assert.Equal(40, Convert.FromBase64String(made).Length);
        }
    }

    [Fact]
    public void The_Dockerfiles_build_step_publishes_an_engine_that_runs()
    {
        string dockerfile = File.ReadAllText(Path.Combine(Repository.Root, "deploy", "Dockerfile"));
        string publish = Assert.Single(dockerfile.Split('\n'), l => l.StartsWith("RUN dotnet publish ", StringComparison.Ordinal))["RUN ".Length..]
            .Replace("${TORCH_BACKEND}", "cpu", StringComparison.Ordinal);
        string output = Path.Combine(Path.GetTempPath(), "inference-publish-" + Guid.NewGuid().ToString("N"));
        try
        {
            // The image's step, as written (output redirected here instead of the image's /app).
            var arguments = publish.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
            arguments[arguments.IndexOf("-o") + 1] = output;
            Assert.Equal(0, Run("dotnet", arguments, Repository.Root, TimeSpan.FromMinutes(8)));
            string entry = Assert.Single(dockerfile.Split('\n'), l => l.StartsWith("ENTRYPOINT", StringComparison.Ordinal));
            Assert.Contains("/app/inference.dll", entry);
            Assert.True(File.Exists(Path.Combine(output, "inference.dll")));
            Assert.Equal(0, Run("dotnet", [Path.Combine(output, "inference.dll"), "serve", "--help"], output, TimeSpan.FromMinutes(1)));
        }
        finally
        {
            if (Directory.Exists(output))
            {
                Directory.Delete(output, recursive: true);
            }
        }
    }

    private static int Run(string program, IEnumerable<string> arguments, string directory, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} ran past {timeout}.");
        }
        if (process.ExitCode != 0)
        {
            Assert.Fail($"{program} {string.Join(' ', arguments)} exited {process.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
        }
        return process.ExitCode;
    }
}

using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Ingest;
using Inference.Engine.Kafka;
using Inference.Engine.Outputs;
using Inference.Engine.Pipeline;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Engine.Sync;
using Inference.Engine.Training;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Inference.Engine.Hosting;

public static class InferenceServiceCollectionExtensions
{
    /// <summary>The meter .NET publishes its runtime's instruments on (<c>dotnet.gc.*</c>, <c>dotnet.thread_pool.*</c>, <c>dotnet.jit.*</c>).</summary>
    private const string RuntimeMeter = "System.Runtime";

    /// <summary>
    /// Composes the engine's stages for the configured role. Each stage registers its own options
    /// (bound from its <c>Inference:*</c> section), validator, metrics and services; a bad value fails
    /// start with a message naming its key.
    /// </summary>
    public static IInferenceBuilder AddInference(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<InferenceOptions>().Bind(configuration.GetSection(InferenceOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<InferenceOptions>, InferenceOptionsValidator>();
        // Every clock read and timer of the engine goes through this one clock; a test replaces it (FakeTimeProvider) before AddInference.
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.AddGrpc(grpc => grpc.EnableDetailedErrors = false);
        // Requests are bounded per service, by their length prefix before they are read: Score, GetFeatures,
        // GetModel and the open services small, ingestion batches larger, parameter sync (whole models) largest.
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions>().Configure<IOptions<ServingOptions>>((grpc, serving) =>
        {
            grpc.MaxReceiveMessageSize = serving.Value.MaxRequestBytes;
            grpc.MaxSendMessageSize = serving.Value.MaxMessageBytes;
        });
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions<IngestGrpcService>>().Configure<IOptions<ServingOptions>>((grpc, serving) =>
            grpc.MaxReceiveMessageSize = serving.Value.MaxIngestBytes);
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions<ParameterGrpcService>>().Configure<IOptions<ServingOptions>>((grpc, serving) =>
            grpc.MaxReceiveMessageSize = serving.Value.MaxMessageBytes);
        // The channels the engine calls others with: security's credentials, serving's message limit.
        services.AddSingleton(sp => new EngineChannels(sp.GetRequiredService<IOptions<SecurityOptions>>(), sp.GetRequiredService<IOptions<ServingOptions>>().Value.MaxMessageBytes));
        // How close to the end of its partitions a consumer counts as caught up (a serving option: readiness).
        services.AddSingleton(sp => new ConsumerReadiness(sp.GetRequiredService<IOptions<ServingOptions>>().Value.ReadyLagEvents));
        // grpc.health.v1.Health: SERVING once the state is restored and replayed (with checkpoints) and
        // while the device executor takes work.
        services.AddSingleton<Readiness>();
        services.AddGrpcHealthChecks().AddCheck<EngineHealthCheck>("engine");
        services.AddGrpcReflection();
        // Every instrument of the engine's meter, and the runtime's own (garbage collections and their pause
        // time, the thread pool, JIT compilations), for Prometheus to scrape at /metrics on the HTTP port.
        services.AddOpenTelemetry().ConfigureResource(resource => resource.AddService("inference"))
            .WithMetrics(metrics => metrics.AddMeter(EngineMeter.Name, RuntimeMeter).AddPrometheusExporter());

        var role = configuration.GetSection(InferenceOptions.Section).GetValue(nameof(InferenceOptions.Role), EngineRole.All);
        var inference = new InferenceBuilder(services, configuration, role).AddStageOptions();
        _ = role switch
        {
            EngineRole.Ps => inference.AddParameterServer(),
            EngineRole.Worker => inference.AddPipeline().AddPoolWorker(),
            _ => inference.AddPipeline().AddLocalParameters(),
        };
        EngineLifecycle.Add(services);
        services.AddSingleton<InferenceMetrics>();
        return inference;
    }

    /// <summary>
    /// Checks every stage's options at once and throws one <see cref="OptionsValidationException"/> that
    /// lists every failure, each naming its key (rather than stopping at the first stage that fails),
    /// keys under <c>Inference:</c> that no option declares among them.
    /// </summary>
    public static void ValidateInference(this IServiceProvider services)
    {
        var failures = new List<string>();
        if (services.GetService<IConfiguration>() is { } configuration)
        {
            failures.AddRange(ConfigurationKeys.Unknown(configuration));
        }
        void Check<T>()
            where T : class
        {
            try
            {
                _ = services.GetRequiredService<IOptions<T>>().Value;
            }
            catch (OptionsValidationException error)
            {
                failures.AddRange(error.Failures);
            }
            catch (InvalidOperationException error) when (ConfigurationKeys.ConversionFailure(error) is { } failure)
            {
                failures.Add(failure);
            }
        }
        Check<InferenceOptions>();
        Check<KafkaOptions>();
        Check<FeatureOptions>();
        Check<ModelOptions>();
        Check<TrainingOptions>();
        Check<ServingOptions>();
        Check<SyncOptions>();
        Check<CheckpointOptions>();
        Check<ScoreOutputOptions>();
        Check<AlertOptions>();
        Check<SecurityOptions>();
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(InferenceOptions.Section, typeof(InferenceOptions), failures);
        }
    }

    private sealed class EngineHealthCheck(Readiness readiness) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            return Task.FromResult(readiness.Problem() is { } problem ? HealthCheckResult.Unhealthy(problem) : HealthCheckResult.Healthy());
        }
    }

    private sealed class InferenceOptionsValidator : IValidateOptions<InferenceOptions>
    {
        public ValidateOptionsResult Validate(string? name, InferenceOptions options) =>
            Enum.IsDefined(options.Role) ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail($"Inference:Role must be All, Worker or Ps (got '{options.Role}').");
    }
}

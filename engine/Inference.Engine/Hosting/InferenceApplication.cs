using System.Net;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Engine.Sync;
using Inference.Models;
using Inference.Models.Registry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Hosting;

/// <summary>Builds the engine's host: Kestrel with an HTTP/2 (h2c) gRPC endpoint and the stages of the role.</summary>
public static partial class InferenceApplication
{
    /// <summary>Command-line switches that map onto configuration keys.</summary>
    public static readonly IReadOnlyDictionary<string, string> SwitchMappings = new Dictionary<string, string>
    {
        ["--role"] = "Inference:Role",
        ["--bootstrap-servers"] = "Inference:Kafka:BootstrapServers",
        ["--events-topic"] = "Inference:Kafka:EventsTopic",
        ["--labels-topic"] = "Inference:Kafka:LabelsTopic",
        ["--group-id"] = "Inference:Kafka:GroupId",
        ["--port"] = "Inference:Serving:Port",
        ["--host"] = "Inference:Serving:Host",
        ["--parameter-server"] = "Inference:Sync:ParameterServer",
        ["--accelerator"] = "Inference:Features:Accelerator",
        ["--embedded-kafka"] = "Inference:Kafka:Embedded",
        ["--features"] = "Inference:Features:File",
        ["--checkpoints"] = "Inference:Checkpoints:Directory",
        ["--model"] = "Inference:Model:File",
        ["--model-wins"] = "Inference:Model:FileWins",
    };

    /// <summary>The switches of <see cref="SwitchMappings"/> that are true when given without a value.</summary>
    public static readonly IReadOnlySet<string> BooleanSwitches = new HashSet<string> { "--embedded-kafka", "--model-wins" };

    /// <summary>
    /// Creates the host. Configuration comes from appsettings.json, INFERENCE_-prefixed environment
    /// variables, the command line, then <paramref name="overrides"/> (tests and the demo).
    /// </summary>
    public static WebApplication Build(string[] args, IDictionary<string, string?>? overrides = null, Action<ILoggingBuilder>? logging = null)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables("INFERENCE_")
            .AddCommandLine(args, SwitchMappings.ToDictionary());
        if (overrides is not null)
        {
            builder.Configuration.AddInMemoryCollection(overrides);
        }
        builder.Logging.AddConfiguration(builder.Configuration.GetSection("Logging"));
        // Every probe of an engine not yet ready would log an error; readiness is what the probe itself reports.
        builder.Logging.AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks.DefaultHealthCheckService", LogLevel.Critical);
        // A start that fails says why in one line on its way out (exit 3 or 4); the host's own error log of it
        // is a stack trace. A background service that dies later is still logged (critical).
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        if (logging is null)
        {
            builder.Logging.AddSimpleConsole(o => o.SingleLine = true);
        }
        else
        {
            logging(builder.Logging);
        }

        builder.WebHost.UseKestrelCore();
        builder.Services.AddRoutingCore();
        builder.Services.AddInference(builder.Configuration);
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<ServingOptions>, IOptions<SecurityOptions>>((kestrel, options, security) =>
        {
            var serving = options.Value;
            // gRPC bounds each message (Inference:Serving:MaxMessageBytes); Kestrel's 30 MB body limit would
            // refuse a unary push of a model of ten million weights before gRPC saw it.
            kestrel.Limits.MaxRequestBodySize = null;
            // gRPC first (its address is the first the host reports), then the HTTP/1.1 probes.
            Listen(kestrel, serving.Host, serving.Port, HttpProtocols.Http2, security.Value.Tls);
            if (serving.HttpPort >= 0)
            {
                // The same certificate on the HTTP port; client certificates at most allowed there (probes and
                // scrapers bring a token, or nothing for the open paths).
                Listen(kestrel, serving.Host, serving.HttpPort, HttpProtocols.Http1, security.Value.Tls, http: true);
            }
        });

        // Every failure at once, before the host is built: building it creates Kestrel, whose endpoints read the
        // serving options and would report only their own failure.
        using (var check = builder.Services.BuildServiceProvider())
        {
            check.ValidateInference();
        }
        var app = builder.Build();
        // Before any endpoint reads a body: each request's credentials against its method's scope.
        app.Use(app.Services.GetRequiredService<CallAuthorizer>().Middleware);
        var role = app.Services.GetRequiredService<IOptions<InferenceOptions>>().Value.Role;
        app.MapGrpcHealthChecksService();
        var servingOptions = app.Services.GetRequiredService<IOptions<ServingOptions>>().Value;
        if (servingOptions.ReflectionEnabled)
        {
            app.MapGrpcReflectionService();
        }
        if (servingOptions.HttpPort >= 0)
        {
            Probes.Map(app);
        }
        if (role is EngineRole.All or EngineRole.Ps)
        {
            app.MapGrpcService<ParameterGrpcService>();
        }
        if (role is EngineRole.All or EngineRole.Worker)
        {
            app.MapGrpcService<ScoringGrpcService>();
            app.MapGrpcService<ModelGrpcService>();
            app.MapGrpcService<IngestGrpcService>();
        }
        app.Lifetime.ApplicationStarted.Register(() => LogStarted(app, role));
        return app;
    }

    /// <summary>
    /// Runs the engine until it stops (<c>inference serve</c>). A port another process holds fails as
    /// bad configuration naming its key, in one line (<see cref="OptionsValidationException"/>), not as
    /// Kestrel's exception.
    /// </summary>
    public static async Task RunEngineAsync(this WebApplication app)
    {
        var serving = app.Services.GetRequiredService<IOptions<ServingOptions>>().Value;
        OptionsValidationException InUse(string key, int port) => new(ServingOptions.Section, typeof(ServingOptions),
            [$"{key}: port {port} on {serving.Host} is in use by another process; stop it or choose another port (0 picks a free one)."]);
        try
        {
            // Before anything starts (consumers, the broker, training): the ports are free. Kestrel binds last,
            // so a port taken in between is still caught below.
            foreach (var (key, port) in new[] { ("Inference:Serving:Port", serving.Port), ("Inference:Serving:HttpPort", serving.HttpPort) })
            {
                if (port > 0 && PortInUse(serving.Host, port))
                {
                    throw InUse(key, port);
                }
            }
            try
            {
                await app.StartAsync().ConfigureAwait(false);
            }
            catch (IOException error) when (error.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
            {
                bool http = serving.HttpPort > 0 && error.Message.Contains($":{serving.HttpPort}:", StringComparison.Ordinal);
                throw http ? InUse("Inference:Serving:HttpPort", serving.HttpPort) : InUse("Inference:Serving:Port", serving.Port);
            }
            await app.WaitForShutdownAsync().ConfigureAwait(false);
        }
        finally
        {
            await app.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>True when another socket holds <paramref name="port"/> on the address Kestrel would listen on.</summary>
    private static bool PortInUse(string host, int port)
    {
        var address = host == "localhost" ? IPAddress.Loopback : IPAddress.TryParse(host, out var parsed) ? parsed : null;
        if (address is null)
        {
            return false;
        }
        try
        {
            var listener = new System.Net.Sockets.TcpListener(address, port);
            listener.Start();
            listener.Stop();
            return false;
        }
        catch (System.Net.Sockets.SocketException error) when (error.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse)
        {
            return true;
        }
    }

    /// <summary>The gRPC address the host listens on once started, e.g. "http://127.0.0.1:50051".</summary>
    public static string GrpcAddress(this WebApplication app) => app.Urls.First();

    /// <summary>The HTTP/1.1 address of the probes once started, e.g. "http://127.0.0.1:9464"; null when none is served.</summary>
    public static string? HttpAddress(this WebApplication app) => app.Urls.Skip(1).FirstOrDefault();

    private static void Listen(KestrelServerOptions kestrel, string host, int port, HttpProtocols protocols, TlsOptions? tls, bool http = false)
    {
        void Configure(ListenOptions listen)
        {
            listen.Protocols = protocols;
            if (tls is { Enabled: true })
            {
                var certificate = Certificates.Load(tls.Certificate!, tls.Key, tls.Password);
                var authorities = string.IsNullOrWhiteSpace(tls.ClientCa) ? null : Certificates.LoadAuthorities(tls.ClientCa);
                listen.UseHttps(certificate, https =>
                {
                    https.ClientCertificateMode = tls.ClientCertificates switch
                    {
                        ClientCertificates.Require when !http => ClientCertificateMode.RequireCertificate,
                        ClientCertificates.Allow or ClientCertificates.Require => ClientCertificateMode.AllowCertificate,
                        _ => ClientCertificateMode.NoCertificate,
                    };
                    https.ClientCertificateValidation = (peer, _, errors) => Certificates.Verify(peer, errors, authorities);
                });
            }
        }
        if (host == "localhost")
        {
            kestrel.ListenLocalhost(port, Configure);
        }
        else if (IPAddress.TryParse(host, out var address))
        {
            kestrel.Listen(address, port, Configure);
        }
        else
        {
            throw new OptionsValidationException(ServingOptions.Section, typeof(ServingOptions),
                [$"Inference:Serving:Host must be an IP address or 'localhost' (got '{host}')."]);
        }
    }

    private static void LogStarted(WebApplication app, EngineRole role)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Inference");
        if (role == EngineRole.Ps)
        {
            Log.StartedPs(logger, app.GrpcAddress());
            return;
        }
        var features = app.Services.GetRequiredService<FeatureStore>();
        var registry = app.Services.GetRequiredService<ModelRegistry>();
        var kafka = app.Services.GetRequiredService<KafkaConnection>();
        Log.Started(logger, role.ToString(), app.GrpcAddress(), features.AcceleratorDescription, TorchRuntime.Description, kafka.BootstrapServers, registry.Spec.Kind.ToString(), registry.Spec.Inputs, registry.Origin);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Engine role {Role} serving gRPC at {Address}; features on {Accelerator}; models on {Torch}; Kafka at {BootstrapServers}; {Kind} model over {Inputs} inputs, starting from {Origin}.")]
        public static partial void Started(ILogger logger, string role, string address, string accelerator, string torch, string bootstrapServers, string kind, int inputs, string origin);

        [LoggerMessage(2, LogLevel.Information, "Parameter server serving gRPC at {Address}.")]
        public static partial void StartedPs(ILogger logger, string address);
    }
}

using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using Inference.Engine.Hosting;
using Inference.Engine.Kafka;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Engine.Sync;
using Inference.Models.Parameters;
using Inference.Proto.V1;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Tests;

/// <summary>
/// TLS, mutual TLS and bearer tokens on the gRPC endpoint, with certificates generated here (a private
/// authority signing the server's and a client's), through real gRPC clients over loopback.
/// </summary>
public sealed class SecurityTests : IDisposable
{
    private const string Token = "test-token-0123456789abcdef";
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "inference-tls-" + Guid.NewGuid().ToString("N"));

    public SecurityTests()
    {
        Directory.CreateDirectory(_directory);
        using var authorityKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var authorityRequest = new CertificateRequest("CN=Inference test authority", authorityKey, HashAlgorithmName.SHA256);
        authorityRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        authorityRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var authority = authorityRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        File.WriteAllText(AuthorityPem, authority.ExportCertificatePem());
        Issue(authority, "CN=localhost", serverAuth: true, Path.Combine(_directory, "server"));
        Issue(authority, "CN=worker-a", serverAuth: false, Path.Combine(_directory, "client"));
        // A certificate from an authority the server does not trust.
        using var strangerKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var strangerRequest = new CertificateRequest("CN=stranger", strangerKey, HashAlgorithmName.SHA256);
        using var stranger = strangerRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        File.WriteAllText(Path.Combine(_directory, "stranger.pem"), stranger.ExportCertificatePem());
        File.WriteAllText(Path.Combine(_directory, "stranger.key"), strangerKey.ExportPkcs8PrivateKeyPem());
    }

    private string AuthorityPem => Path.Combine(_directory, "authority.pem");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static void Issue(X509Certificate2 authority, string subject, bool serverAuth, string stem)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid(serverAuth ? "1.3.6.1.5.5.7.3.1" : "1.3.6.1.5.5.7.3.2")], false));
        if (serverAuth)
        {
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName("localhost");
            names.AddIpAddress(IPAddress.Loopback);
            request.CertificateExtensions.Add(names.Build());
        }
        using var certificate = request.Create(authority, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(29), RandomNumberGenerator.GetBytes(8));
        File.WriteAllText(stem + ".pem", certificate.ExportCertificatePem());
        File.WriteAllText(stem + ".key", key.ExportPkcs8PrivateKeyPem());
    }

    private Dictionary<string, string?> TlsServer(string role)
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Role"] = role;
        settings["Inference:Security:Tls:Certificate"] = Path.Combine(_directory, "server.pem");
        settings["Inference:Security:Tls:Key"] = Path.Combine(_directory, "server.key");
        settings["Inference:Security:Tls:ClientCertificates"] = "Allow";
        settings["Inference:Security:Tls:ClientCa"] = AuthorityPem;
        settings["Inference:Security:Tokens:0"] = Token;
        return settings;
    }

    private EngineChannels Client(string? token = null, string? certificate = null, bool trustAuthority = true) => new(Options.Create(new SecurityOptions
    {
        Client = new ClientSecurityOptions
        {
            Token = token,
            Ca = trustAuthority ? AuthorityPem : null,
            Certificate = certificate is null ? null : Path.Combine(_directory, certificate + ".pem"),
            Key = certificate is null ? null : Path.Combine(_directory, certificate + ".key"),
        },
    }), ServingOptions.DefaultMaxMessageBytes);

    private static PushRequest Initialize(string worker)
    {
        var request = new PushRequest { WorkerId = worker, Initialize = true };
        new ParameterSet([new NamedParameter("layers.linear.weight", [1, 2], [1f, 1f])]).WriteTo(request.Deltas);
        return request;
    }

    private static async Task<StatusCode> PushStatus(EngineChannels channels, string address)
    {
        using var channel = channels.Open(address);
        try
        {
            await new ParameterService.ParameterServiceClient(channel).PushAsync(Initialize("w"), channels.Headers, deadline: DateTime.UtcNow.AddSeconds(10));
            return StatusCode.OK;
        }
        catch (RpcException error)
        {
            return error.StatusCode;
        }
    }

    [Fact]
    public async Task Over_TLS_the_parameter_service_takes_a_push_with_the_token_or_a_client_certificate_and_refuses_one_without()
    {
        await using var ps = await EngineHarness.StartAsync(TlsServer("Ps"));
        string address = ps.Address;
        Assert.StartsWith("https://", address);

        Assert.Equal(StatusCode.Unauthenticated, await PushStatus(Client(), address));
        Assert.Equal(StatusCode.Unauthenticated, await PushStatus(Client(token: "not-the-token-0123456789"), address));
        Assert.Equal(0, ps.Get<ParameterShard>().Current.Version);
        Assert.Equal(StatusCode.OK, await PushStatus(Client(token: Token), address));
        Assert.Equal(StatusCode.OK, await PushStatus(Client(certificate: "client"), address));
        // A client certificate from an authority the server does not trust ends the handshake.
        Assert.True(await PushStatus(Client(token: Token, certificate: "stranger"), address) is StatusCode.Unavailable or StatusCode.Internal);
        // A client that does not trust the server's authority does not send its token at all.
        Assert.True(await PushStatus(Client(token: Token, trustAuthority: false), address) is StatusCode.Unavailable or StatusCode.Internal);
        // Health stays open (probes carry no credentials).
        using var plain = Client().Open(address);
        var health = await new Grpc.Health.V1.Health.HealthClient(plain).CheckAsync(new Grpc.Health.V1.HealthCheckRequest());
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
    }

    [Fact]
    public async Task A_worker_syncs_over_TLS_with_its_token_and_one_without_it_does_not_start()
    {
        await using var ps = await EngineHarness.StartAsync(TlsServer("Ps"));
        using var kafka = new EmbeddedKafka();
        kafka.CreateTopic("events", 2);
        kafka.CreateTopic("labels", 2);
        Dictionary<string, string?> Worker(string name, string? token)
        {
            var settings = EngineHarness.BaseSettings();
            settings["Inference:Role"] = "Worker";
            settings["Inference:Kafka:BootstrapServers"] = kafka.BootstrapServers;
            settings["Inference:Kafka:GroupId"] = name;
            settings["Inference:Kafka:DeadLetterTopic"] = "";
            settings["Inference:Sync:ParameterServer"] = ps.Address;
            settings["Inference:Sync:WorkerId"] = name;
            settings["Inference:Security:Client:Ca"] = AuthorityPem;
            settings["Inference:Security:Client:Token"] = token;
            return settings;
        }
        // Without the token a worker does not start: its parameter server refuses it, and it says which key.
        var refused = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(Worker("intruder", token: null)));
        Assert.Contains("Inference:Security:Client:Token", refused.Message);
        Assert.Equal(0, ps.Get<ParameterShard>().Current.Version);

        await using var worker = await EngineHarness.StartAsync(Worker("a", Token));
        await EngineHarness.WaitUntil(() => worker.Metrics.Sync.SyncRounds >= 3, TimeSpan.FromSeconds(30), () => "the worker with its token to sync");
        Assert.True(ps.Get<ParameterShard>().Current.Version >= 1, "the worker seeded the parameter server");
        Assert.Equal(0, ps.Get<SyncMetrics>().RefusedPushes);
    }

    private static readonly string[] ScopeNamesInOrder = ["score", "features", "ingest", "admin", "sync"];

    private static string ScopedToken(string scope) => $"token-of-scope-{scope}-0123456789";

    /// <summary>An engine of role All with one token per scope besides the full one.</summary>
    private static Dictionary<string, string?> Scoped()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Security:Tokens:0"] = Token;
        for (int i = 0; i < ScopeNamesInOrder.Length; i++)
        {
            settings[$"Inference:Security:ScopedTokens:{i}:Token"] = ScopedToken(ScopeNamesInOrder[i]);
            settings[$"Inference:Security:ScopedTokens:{i}:Scopes"] = ScopeNamesInOrder[i];
        }
        return settings;
    }

    private static Metadata Bearer(string token) => new() { { "authorization", "Bearer " + token } };

    /// <summary>Each method's call as a client makes it: its status with <paramref name="headers"/>.</summary>
    private static async Task<StatusCode> Call(GrpcChannel channel, string scope, Metadata? headers)
    {
        var scoring = new ScoringService.ScoringServiceClient(channel);
        try
        {
            switch (scope)
            {
                case "score":
                    await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "user-1" } } }, headers);
                    break;
                case "features":
                    await scoring.GetFeaturesAsync(new GetFeaturesRequest { Entities = { "user-1" } }, headers);
                    break;
                case "admin":
                    await scoring.GetModelAsync(new GetModelRequest(), headers);
                    break;
                case "sync":
                    await new ParameterService.ParameterServiceClient(channel).MembersAsync(new MembersRequest(), headers);
                    break;
                case "ingest":
                    using (var call = new IngestService.IngestServiceClient(channel).Ingest(headers))
                    {
                        try
                        {
                            await call.RequestStream.WriteAsync(new EventBatch { Events = { new Event { Entity = "user-1", Ts = 1, Values = { ["amount"] = 1 } } } });
                            await call.RequestStream.CompleteAsync();
                        }
                        catch (Exception error) when (error is RpcException or InvalidOperationException)
                        {
                            // A refused stream may end while the client still writes (the server answers from the
                            // headers, without reading): its status is the response's, read below.
                        }
                        Assert.True(await call.ResponseStream.MoveNext());
                    }
                    break;
            }
            return StatusCode.OK;
        }
        catch (RpcException error)
        {
            return error.StatusCode;
        }
    }

    [Fact]
    public async Task Each_method_needs_a_token_of_its_scope_no_token_is_unauthenticated_and_another_scope_is_denied()
    {
        await using var engine = await EngineHarness.StartAsync(Scoped());
        foreach (string scope in ScopeNamesInOrder)
        {
            Assert.True(await Call(engine.Channel, scope, null) == StatusCode.Unauthenticated, $"{scope} without a token");
            Assert.True(await Call(engine.Channel, scope, Bearer("not-a-configured-token-0123")) == StatusCode.Unauthenticated, $"{scope} with an unknown token");
            foreach (string other in ScopeNamesInOrder.Where(o => o != scope))
            {
                Assert.True(await Call(engine.Channel, scope, Bearer(ScopedToken(other))) == StatusCode.PermissionDenied, $"{scope} with a token of scope {other}");
            }
            Assert.True(await Call(engine.Channel, scope, Bearer(ScopedToken(scope))) == StatusCode.OK, $"{scope} with its own token");
            Assert.True(await Call(engine.Channel, scope, Bearer(Token)) == StatusCode.OK, $"{scope} with the full token");
        }
        // The refusal says what is missing; health and reflection stay open.
        var denied = await Assert.ThrowsAsync<RpcException>(() => new ScoringService.ScoringServiceClient(engine.Channel)
            .GetModelAsync(new GetModelRequest(), Bearer(ScopedToken("score"))).ResponseAsync);
        Assert.Contains("scope 'admin'", denied.Status.Detail);
        var health = await new Grpc.Health.V1.Health.HealthClient(engine.Channel).CheckAsync(new Grpc.Health.V1.HealthCheckRequest());
        Assert.Equal(Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
    }

    [Fact]
    public async Task Anonymous_score_opens_score_only()
    {
        var settings = Scoped();
        settings["Inference:Security:AnonymousScore"] = "true";
        await using var engine = await EngineHarness.StartAsync(settings);
        Assert.Equal(StatusCode.OK, await Call(engine.Channel, "score", null));
        Assert.Equal(StatusCode.Unauthenticated, await Call(engine.Channel, "features", null));
        Assert.Equal(StatusCode.Unauthenticated, await Call(engine.Channel, "admin", null));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_http_port_needs_an_admin_token_for_its_data_and_metrics_may_be_opened(bool metricsOpen)
    {
        var settings = Scoped();
        settings["Inference:Security:MetricsOpen"] = metricsOpen ? "true" : "false";
        await using var engine = await EngineHarness.StartAsync(settings);
        using var http = new HttpClient { BaseAddress = new Uri(engine.App.HttpAddress()!) };
        async Task<HttpStatusCode> Get(string path, string? token = null)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path);
            if (token is not null)
            {
                request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
            }
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            return response.StatusCode;
        }
        // Probes and the dashboard's page are open; its data needs the admin scope, as a header or ?access_token=.
        Assert.Equal(HttpStatusCode.OK, await Get("/healthz"));
        Assert.Equal(HttpStatusCode.OK, await Get("/readyz"));
        Assert.Equal(HttpStatusCode.OK, await Get("/"));
        Assert.Equal(metricsOpen ? HttpStatusCode.OK : HttpStatusCode.Unauthorized, await Get("/metrics"));
        Assert.Equal(metricsOpen ? HttpStatusCode.OK : HttpStatusCode.Forbidden, await Get("/metrics", ScopedToken("score")));
        Assert.Equal(HttpStatusCode.OK, await Get("/metrics", ScopedToken("admin")));
        Assert.Equal(HttpStatusCode.Unauthorized, await Get("/dashboard/stream"));
        Assert.Equal(HttpStatusCode.Unauthorized, await Get("/alerts/stream"));
        Assert.Equal(HttpStatusCode.Forbidden, await Get("/alerts/stream?access_token=" + ScopedToken("features")));
        Assert.Equal(HttpStatusCode.OK, await Get("/dashboard/stream?access_token=" + ScopedToken("admin")));
    }

    [Fact]
    public async Task An_oversized_score_is_refused_with_resource_exhausted_and_the_engine_goes_on()
    {
        var settings = Scoped();
        settings["Inference:Serving:MaxRequestBytes"] = (256 << 10).ToString(System.Globalization.CultureInfo.InvariantCulture);
        await using var engine = await EngineHarness.StartAsync(settings);
        var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
        var big = new ScoreRequest { Rows = { new ScoreRow { Entity = new string('x', 300 << 10) } } };
        var refused = await Assert.ThrowsAsync<RpcException>(() => scoring.ScoreAsync(big, Bearer(Token)).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        // Without credentials it is refused as unauthenticated, from its headers alone.
        var unauthenticated = await Assert.ThrowsAsync<RpcException>(() => scoring.ScoreAsync(big).ResponseAsync);
        Assert.Equal(StatusCode.Unauthenticated, unauthenticated.StatusCode);
        await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "user-1" } } }, Bearer(Token));
        // Parameter sync still takes whole models.
        Assert.Equal(ServingOptions.DefaultMaxMessageBytes, engine.Get<IOptions<ServingOptions>>().Value.MaxMessageBytes);
    }

    [Fact]
    public void With_no_credentials_configured_guarded_methods_take_calls_from_loopback_only()
    {
        var open = new CallAuthorizer(Options.Create(new SecurityOptions()));
        Assert.Equal(Scopes.Sync, open.Required("/inference.v1.ParameterService/Push"));
        Assert.Equal(Scopes.Ingest, open.Required("/inference.v1.IngestService/Ingest"));
        Assert.Equal(Scopes.Admin, open.Required("/inference.v1.ScoringService/GetModel"));
        Assert.Equal(Scopes.Score, open.Required("/inference.v1.ScoringService/Score"));
        Assert.Equal(Scopes.Features, open.Required("/inference.v1.ScoringService/GetFeatures"));
        Assert.Equal(Scopes.None, open.Required("/grpc.health.v1.Health/Check"));
        Assert.Null(open.Check(new PresentedCredentials(null, false, IPAddress.Loopback), Scopes.Score));
        Assert.Null(open.Check(new PresentedCredentials(null, false, IPAddress.IPv6Loopback), Scopes.Sync));
        Assert.Contains("Inference:Security:Tokens", open.Check(new PresentedCredentials(null, false, IPAddress.Parse("10.1.2.3")), Scopes.Score)!.Value.Message);
        Assert.NotNull(open.Check(new PresentedCredentials("Bearer anything-at-all-here", false, IPAddress.Parse("10.1.2.3")), Scopes.Score));

        var guarded = new CallAuthorizer(Options.Create(new SecurityOptions { Tokens = [Token], Tls = new TlsOptions { ClientCertificateScopes = "sync" } }));
        Assert.NotNull(guarded.Check(new PresentedCredentials(null, false, IPAddress.Loopback), Scopes.Score));
        Assert.Null(guarded.Check(new PresentedCredentials("Bearer " + Token, false, IPAddress.Parse("10.1.2.3")), Scopes.Admin));
        Assert.NotNull(guarded.Check(new PresentedCredentials("Bearer " + Token + "x", false, IPAddress.Loopback), Scopes.Score));
        // A verified client certificate grants the scopes configured for certificates, and only those.
        Assert.Null(guarded.Check(new PresentedCredentials(null, true, IPAddress.Parse("10.1.2.3")), Scopes.Sync));
        Assert.True(guarded.Check(new PresentedCredentials(null, true, IPAddress.Parse("10.1.2.3")), Scopes.Score) is { Denied: true });
    }

    [Fact]
    public async Task A_short_token_or_an_unreadable_certificate_stops_the_start_naming_the_key()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Role"] = "Ps";
        settings["Inference:Security:Tokens:0"] = "short";
        settings["Inference:Security:Tls:Certificate"] = Path.Combine(_directory, "missing.pem");
        settings["Inference:Security:ScopedTokens:0:Token"] = "a-long-enough-token-0123456789";
        settings["Inference:Security:ScopedTokens:0:Scopes"] = "score,everything";
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("Inference:Security:Tokens:0", error.Message);
        Assert.Contains("Inference:Security:ScopedTokens:0:Scopes", error.Message);
        Assert.Contains("Inference:Security:Tls:Certificate", error.Message);
        Assert.DoesNotContain("'short'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Client_certificates_are_taken_only_from_a_named_authority()
    {
        var settings = TlsServer("Ps");
        settings["Inference:Security:Tls:ClientCa"] = null;
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("Inference:Security:Tls:ClientCa", error.Message);
    }

    [Fact]
    public async Task With_tls_configured_the_http_port_serves_tls_too_and_a_certificate_of_another_authority_is_refused()
    {
        var settings = TlsServer("Ps");
        settings["Inference:Security:Tls:ClientCertificates"] = "Require";
        await using var ps = await EngineHarness.StartAsync(settings);
        string address = ps.App.HttpAddress()!;
        Assert.StartsWith("https://", address);
        using var authority = X509CertificateLoader.LoadCertificateFromFile(AuthorityPem);
        using var handler = new HttpClientHandler
        {
            ServerCertificateCustomValidationCallback = (_, certificate, _, _) => Certificates.Verify(certificate, System.Net.Security.SslPolicyErrors.None, new X509Certificate2Collection(authority)),
        };
        using var http = new HttpClient(handler) { BaseAddress = new Uri(address) };
        // Probes need no client certificate even where gRPC requires one; data needs the token.
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/metrics")).StatusCode);
        using var plain = new HttpClient { BaseAddress = new Uri(address.Replace("https://", "http://", StringComparison.Ordinal)) };
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => plain.GetAsync("/healthz"));
        // On gRPC, where certificates are required, one from another authority ends the handshake.
        Assert.True(await PushStatus(Client(token: Token, certificate: "stranger"), ps.Address) is StatusCode.Unavailable or StatusCode.Internal);
        Assert.Equal(StatusCode.OK, await PushStatus(Client(certificate: "client"), ps.Address));
    }
}

using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Inference.Engine.Kafka;
using Inference.Engine.Security;
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
    }));

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
    public async Task A_worker_syncs_over_TLS_with_its_token_and_one_without_it_is_refused()
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
        await using var intruder = await EngineHarness.StartAsync(Worker("intruder", token: null));
        await EngineHarness.WaitUntil(() => intruder.Metrics.Sync.Failures >= 3, TimeSpan.FromSeconds(30), () => "the worker without a token to fail its syncs");
        Assert.Equal(0, ps.Get<ParameterShard>().Current.Version);

        await using var worker = await EngineHarness.StartAsync(Worker("a", Token));
        await EngineHarness.WaitUntil(() => worker.Metrics.Sync.SyncRounds >= 3, TimeSpan.FromSeconds(30), () => "the worker with its token to sync");
        Assert.True(ps.Get<ParameterShard>().Current.Version >= 1, "the worker seeded the parameter server");
        Assert.Equal(0, ps.Get<SyncMetrics>().RefusedPushes);
    }

    [Fact]
    public async Task Score_is_open_unless_configured_while_ingest_and_GetModel_need_the_token()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Security:Tokens:0"] = Token;
        await using (var engine = await EngineHarness.StartAsync(settings))
        {
            var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
            await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "user-1" } } });
            var refused = await Assert.ThrowsAsync<RpcException>(() => scoring.GetModelAsync(new GetModelRequest()).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
            Assert.Contains("bearer token", refused.Status.Detail);
            var headers = new Metadata { { "authorization", "Bearer " + Token } };
            Assert.NotEmpty((await scoring.GetModelAsync(new GetModelRequest(), headers)).Tensors);

            var ingest = new IngestService.IngestServiceClient(engine.Channel);
            using (var call = ingest.Ingest())
            {
                var error = await Assert.ThrowsAsync<RpcException>(async () =>
                {
                    await call.RequestStream.WriteAsync(new EventBatch { Events = { new Event { Entity = "user-1", Ts = 1, Values = { ["amount"] = 1 } } } });
                    await call.RequestStream.CompleteAsync();
                    await call.ResponseStream.MoveNext();
                });
                Assert.Equal(StatusCode.Unauthenticated, error.StatusCode);
            }
            using (var call = ingest.Ingest(headers))
            {
                await call.RequestStream.WriteAsync(new EventBatch { Events = { new Event { Entity = "user-1", Ts = 1, Values = { ["amount"] = 1 } } } });
                await call.RequestStream.CompleteAsync();
                Assert.True(await call.ResponseStream.MoveNext());
            }
        }
        settings["Inference:Security:ScoreRequiresToken"] = "true";
        await using (var engine = await EngineHarness.StartAsync(settings))
        {
            var scoring = new ScoringService.ScoringServiceClient(engine.Channel);
            var refused = await Assert.ThrowsAsync<RpcException>(() => scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "user-1" } } }).ResponseAsync);
            Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
            await scoring.ScoreAsync(new ScoreRequest { Rows = { new ScoreRow { Entity = "user-1" } } }, new Metadata { { "authorization", "Bearer " + Token } });
        }
    }

    [Fact]
    public void With_no_credentials_configured_guarded_methods_take_calls_from_loopback_only()
    {
        var open = new CallAuthorizer(Options.Create(new SecurityOptions()));
        Assert.True(open.Guards("/inference.v1.ParameterService/Push"));
        Assert.True(open.Guards("/inference.v1.IngestService/Ingest"));
        Assert.True(open.Guards("/inference.v1.ScoringService/GetModel"));
        Assert.False(open.Guards("/inference.v1.ScoringService/Score"));
        Assert.False(open.Guards("/grpc.health.v1.Health/Check"));
        Assert.Null(open.Refusal(new PresentedCredentials(null, false, IPAddress.Loopback)));
        Assert.Null(open.Refusal(new PresentedCredentials(null, false, IPAddress.IPv6Loopback)));
        Assert.Contains("Inference:Security:Tokens", open.Refusal(new PresentedCredentials(null, false, IPAddress.Parse("10.1.2.3"))));
        Assert.NotNull(open.Refusal(new PresentedCredentials("Bearer anything-at-all-here", false, IPAddress.Parse("10.1.2.3"))));

        var guarded = new CallAuthorizer(Options.Create(new SecurityOptions { Tokens = [Token] }));
        Assert.NotNull(guarded.Refusal(new PresentedCredentials(null, false, IPAddress.Loopback)));
        Assert.Null(guarded.Refusal(new PresentedCredentials("Bearer " + Token, false, IPAddress.Parse("10.1.2.3"))));
        Assert.NotNull(guarded.Refusal(new PresentedCredentials("Bearer " + Token + "x", false, IPAddress.Loopback)));
        Assert.Null(guarded.Refusal(new PresentedCredentials(null, true, IPAddress.Parse("10.1.2.3"))));
    }

    [Fact]
    public async Task A_short_token_or_an_unreadable_certificate_stops_the_start_naming_the_key()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Role"] = "Ps";
        settings["Inference:Security:Tokens:0"] = "short";
        settings["Inference:Security:Tls:Certificate"] = Path.Combine(_directory, "missing.pem");
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => EngineHarness.StartAsync(settings));
        Assert.Contains("Inference:Security:Tokens:0", error.Message);
        Assert.Contains("Inference:Security:Tls:Certificate", error.Message);
        Assert.DoesNotContain("'short'", error.Message, StringComparison.Ordinal);
    }
}

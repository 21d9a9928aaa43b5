using System.Net;
using Grpc.Core;
using Grpc.Reflection.V1Alpha;
using Inference.Engine.Hosting;

namespace Inference.Engine.Tests;

/// <summary>What operators and tools reach besides Score: gRPC reflection and the HTTP probes.</summary>
public sealed class EndpointTests
{
    [Fact]
    public async Task Reflection_lists_the_services_and_the_probes_answer_over_http_1_1()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        await using var engine = await EngineHarness.StartAsync(settings);

        // What `grpcurl -plaintext 127.0.0.1:50051 list` does: the reflection service, no proto files.
        var reflection = new ServerReflection.ServerReflectionClient(engine.Channel);
        using var call = reflection.ServerReflectionInfo();
        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();
        Assert.Contains("inference.v1.ScoringService", services);
        Assert.Contains("inference.v1.IngestService", services);
        Assert.Contains("grpc.health.v1.Health", services);

        // Kubernetes probes speak HTTP/1.1, on their own port.
        string http = engine.App.HttpAddress()!;
        Assert.NotEqual(engine.Address, http);
        using var client = new HttpClient { DefaultRequestVersion = HttpVersion.Version11 };
        var live = await client.GetAsync($"{http}/healthz");
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal("ok\n", await live.Content.ReadAsStringAsync());
        var ready = await client.GetAsync($"{http}/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
    }

    [Fact]
    public async Task Reflection_can_be_turned_off()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Serving:Reflection"] = "false";
        settings["Inference:Serving:HttpPort"] = "-1";
        await using var engine = await EngineHarness.StartAsync(settings);
        var reflection = new ServerReflection.ServerReflectionClient(engine.Channel);
        using var call = reflection.ServerReflectionInfo();
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
            await call.ResponseStream.MoveNext();
        });
        Assert.Equal(StatusCode.Unimplemented, error.StatusCode);
        Assert.Null(engine.App.HttpAddress());
    }
}

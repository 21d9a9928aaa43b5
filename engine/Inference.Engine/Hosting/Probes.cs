using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Hosting;

/// <summary>
/// The plain HTTP/1.1 port (<c>Inference:Serving:HttpPort</c>): Prometheus's <c>/metrics</c> (every
/// instrument of the engine's meter, through OpenTelemetry's exporter) and the Kubernetes probes,
/// <c>/healthz</c> (liveness: the host runs and its device executor takes work) and <c>/readyz</c>
/// (readiness, <see cref="Readiness"/>, as the gRPC health service reports); 200 with "ok", else 503
/// with the reason.
/// </summary>
internal static class Probes
{
    public static void Map(WebApplication app)
    {
        int port = app.Services.GetRequiredService<IOptions<Serving.ServingOptions>>().Value.HttpPort;
        string host = port == 0 ? "*" : $"*:{port}";
        app.MapPrometheusScrapingEndpoint("/metrics").RequireHost(host);
        app.MapGet("/healthz", (HttpContext context, Readiness readiness) => Answer(context, readiness.Alive())).RequireHost(host);
        app.MapGet("/readyz", (HttpContext context, Readiness readiness) => Answer(context, readiness.Problem())).RequireHost(host);
        Dashboard.Map(app, host);
    }

    private static Task Answer(HttpContext context, string? problem)
    {
        context.Response.StatusCode = problem is null ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(problem ?? "ok\n");
    }
}

using System.Collections.Concurrent;
using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Inference.Engine.Outputs;
using Inference.Models.Registry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Hosting;

namespace Inference.Engine.Hosting;

/// <summary>
/// The HTTP port's live views: <c>GET /alerts/stream</c> (Server-Sent Events of committed alerts;
/// <c>Last-Event-ID</c> resumes from a bounded buffer), and the dashboard at <c>/</c>, one static page
/// (uPlot vendored, no build step) fed by <c>GET /dashboard/stream</c>: every second events/s, lag,
/// Score p50/p99, dynamic batch size, model version, online loss, scores/s, and the alerts as they come.
/// </summary>
internal static class Dashboard
{
    private const string ResourcePrefix = "dashboard/";

    // Not timeouts: how often an idle stream gets a comment, and how often the live view samples.
    private static readonly TimeSpan KeepAliveInterval = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan SampleInterval = TimeSpan.FromSeconds(1);
    private static readonly ConcurrentDictionary<string, byte[]?> Files = new();

    public static void Map(WebApplication app, string host)
    {
        app.MapGet("/alerts/stream", (HttpContext context, AlertHub hub, TimeProvider time) =>
            StreamAsync(context, time, Alerts(hub, LastEventId(context), context.RequestAborted))).RequireHost(host);
        app.MapGet("/dashboard/stream", (HttpContext context, TimeProvider time, InferenceMetrics metrics, OutputMetrics outputs, AlertHub hub,
                [FromServices] ModelRegistry? registry, [FromServices] Training.ProgressiveValidation? validation, IHostApplicationLifetime lifetime) =>
            StreamAsync(context, time, Live(metrics, outputs, hub, registry, validation, time, lifetime.ApplicationStopping, context.RequestAborted))).RequireHost(host);
        app.MapGet("/", () => File("index.html")).RequireHost(host);
        app.MapGet("/dashboard.js", () => File("dashboard.js")).RequireHost(host);
        app.MapGet("/vendor/{name}", (string name) => File("vendor/" + name)).RequireHost(host);
    }

    /// <summary>
    /// Writes Server-Sent Events (System.Net.ServerSentEvents' formatter), the headers at once so a client
    /// knows it is connected before the first event, and a comment every 15 s so that idle connections
    /// survive proxies.
    /// </summary>
    private static async Task StreamAsync(HttpContext context, TimeProvider time, IAsyncEnumerable<SseItem<string>> items)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.Body.FlushAsync(context.RequestAborted);
        var channel = System.Threading.Channels.Channel.CreateBounded<SseItem<string>>(256);
        var pump = Task.Run(async () =>
        {
            try
            {
                await foreach (var item in items)
                {
                    await channel.Writer.WriteAsync(item, context.RequestAborted);
                }
            }
            catch (OperationCanceledException)
            {
                // The client left.
            }
            finally
            {
                channel.Writer.TryComplete();
            }
        });
        try
        {
            while (!context.RequestAborted.IsCancellationRequested)
            {
                using var keepAlive = new CancellationTokenSource(KeepAliveInterval, time);
                using var heartbeat = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, keepAlive.Token);
                bool more;
                try
                {
                    more = await channel.Reader.WaitToReadAsync(heartbeat.Token);
                }
                catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
                {
                    await response.Body.WriteAsync(": keep-alive\n\n"u8.ToArray(), context.RequestAborted);
                    await response.Body.FlushAsync(context.RequestAborted);
                    continue;
                }
                if (!more)
                {
                    break;
                }
                var batch = new List<SseItem<string>>();
                while (channel.Reader.TryRead(out var item))
                {
                    batch.Add(item);
                }
                await SseFormatter.WriteAsync(ToAsync(batch), response.Body, context.RequestAborted);
                await response.Body.FlushAsync(context.RequestAborted);
            }
        }
        catch (OperationCanceledException)
        {
            // The client left.
        }
        await pump;
    }

    private static async IAsyncEnumerable<SseItem<string>> ToAsync(List<SseItem<string>> items)
    {
        foreach (var item in items)
        {
            yield return item;
        }
        await Task.CompletedTask;
    }

    /// <summary>Where a client resumes: its Last-Event-ID header (or ?lastEventId=), else only alerts from now on.</summary>
    private static long? LastEventId(HttpContext context)
    {
        string? text = context.Request.Headers["Last-Event-ID"].FirstOrDefault() ?? context.Request.Query["lastEventId"].FirstOrDefault();
        return long.TryParse(text, out long id) && id >= 0 ? id : null;
    }

    private static async IAsyncEnumerable<SseItem<string>> Alerts(AlertHub hub, long? lastEventId, [EnumeratorCancellation] CancellationToken cancellation)
    {
        long last = lastEventId ?? hub.Latest;
        while (!cancellation.IsCancellationRequested)
        {
            var (entries, changed) = hub.After(last);
            foreach (var entry in entries)
            {
                last = entry.Sequence;
                yield return new SseItem<string>(entry.Json, "alert") { EventId = entry.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            }
            try
            {
                await changed.WaitAsync(cancellation);
            }
            catch (OperationCanceledException)
            {
                yield break;
            }
        }
    }

    private static async IAsyncEnumerable<SseItem<string>> Live(InferenceMetrics metrics, OutputMetrics outputs, AlertHub hub, ModelRegistry? registry, Training.ProgressiveValidation? validation,
        TimeProvider time, CancellationToken stopping, [EnumeratorCancellation] CancellationToken cancellation)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellation, stopping);
        long lastAlert = Math.Max(0, hub.Latest - 50);
        var before = Counters(metrics, outputs);
        long started = time.GetTimestamp();
        double previous = 0;
        bool first = true;
        while (!linked.IsCancellationRequested)
        {
            var (entries, _) = hub.After(lastAlert);
            foreach (var entry in entries)
            {
                lastAlert = entry.Sequence;
                yield return new SseItem<string>(entry.Json, "alert");
            }
            var now = Counters(metrics, outputs);
            double clock = time.GetElapsedTime(started).TotalSeconds;
            double elapsed = Math.Max(1e-3, clock - previous);
            previous = clock;
            var latency = metrics.Serving.Recent.Percentiles(SampleInterval);
            long batches = now.Batches - before.Batches;
            double loss = metrics.OnlineLogLoss;
            double auc = validation?.Summarise(versions: 0).Window.Auc ?? double.NaN;
            var sample = new
            {
                t = time.GetUtcNow().ToUnixTimeMilliseconds() / 1e3,
                // Rates need an interval: none on the first sample of a connection.
                eventsPerSecond = first ? (double?)null : Math.Round((now.Events - before.Events) / elapsed, 1),
                lag = metrics.ConsumerLag,
                scoreP50Ms = latency?.P50,
                scoreP99Ms = latency?.P99,
                batchRows = !first && batches > 0 ? Math.Round((double)(now.Rows - before.Rows) / batches, 2) : (double?)null,
                modelVersion = registry?.Version ?? 0,
                onlineLogLoss = double.IsFinite(loss) ? loss : (double?)null,
                validationAuc = double.IsFinite(auc) ? auc : (double?)null,
                scoresPerSecond = first ? (double?)null : Math.Round((now.Scored - before.Scored) / elapsed, 1),
                alertsTotal = outputs.Alerts,
            };
            before = now;
            first = false;
            yield return new SseItem<string>(JsonSerializer.Serialize(sample), "metrics");
            try
            {
                await Task.Delay(SampleInterval, time, linked.Token);
            }
            catch (OperationCanceledException)
            {
                yield break;
            }
        }
    }

    private static (long Events, long Rows, long Batches, long Scored) Counters(InferenceMetrics metrics, OutputMetrics outputs) =>
        (metrics.EventsApplied, metrics.RowsScored, metrics.Serving.Batches, outputs.Scored);

    private static IResult File(string name)
    {
        var bytes = Files.GetOrAdd(name, static n =>
        {
            using var stream = typeof(Dashboard).Assembly.GetManifestResourceStream(ResourcePrefix + n);
            if (stream is null)
            {
                return null;
            }
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            return copy.ToArray();
        });
        if (bytes is null)
        {
            return TypedResults.NotFound();
        }
        string type = Path.GetExtension(name) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            _ => "application/octet-stream",
        };
        return TypedResults.Bytes(bytes, type);
    }
}

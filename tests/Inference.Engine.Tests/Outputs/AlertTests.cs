using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Inference.Engine.Hosting;
using Inference.Engine.Outputs;
using Inference.Proto.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Inference.Engine.Tests;

/// <summary>
/// Alerts from stream scoring, over real components: the alerts topic (read_committed), a webhook
/// receiver on loopback Kestrel that verifies every Standard Webhooks signature and fails the first two
/// attempts of some deliveries, an endpoint that never answers (its alerts end on the dead-letter topic),
/// and a Server-Sent Events client that disconnects and resumes with Last-Event-ID.
/// </summary>
public sealed class AlertTests(ITestOutputHelper output)
{
    private const int Whales = 20;

    [Fact]
    public async Task Alerts_reach_the_topic_a_signed_webhook_the_dead_letters_and_a_resuming_SSE_client()
    {
        using var kafka = StreamScoringTests.Broker();
        byte[] key = RandomNumberGenerator.GetBytes(24);
        await using var receiver = await Receiver.StartAsync(key);
        var settings = StreamScoringTests.Settings(kafka, select: "All");
        settings["Inference:Outputs:Alerts:Rules:0:Name"] = "big-spender";
        settings["Inference:Outputs:Alerts:Rules:0:Feature"] = "amount_sum";
        settings["Inference:Outputs:Alerts:Rules:0:FeatureAbove"] = "5000";
        settings["Inference:Outputs:Alerts:Webhooks:0:Url"] = receiver.Address + "/hook";
        settings["Inference:Outputs:Alerts:Webhooks:0:Secret"] = "whsec_" + Convert.ToBase64String(key);
        settings["Inference:Outputs:Alerts:Webhooks:0:MaxAttempts"] = "4";
        settings["Inference:Outputs:Alerts:Webhooks:0:InitialDelayMs"] = "20";
        settings["Inference:Outputs:Alerts:Webhooks:1:Url"] = receiver.Address + "/never";
        settings["Inference:Outputs:Alerts:Webhooks:1:Secret"] = "another secret";
        settings["Inference:Outputs:Alerts:Webhooks:1:MaxAttempts"] = "2";
        settings["Inference:Outputs:Alerts:Webhooks:1:InitialDelayMs"] = "20";
        settings["Inference:Outputs:Alerts:Webhooks:1:TimeoutMs"] = "150";
        await using var engine = await EngineHarness.StartAsync(settings);
        var outputs = engine.Get<OutputMetrics>();
        using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        var sse = new SseClient(http, engine.App.HttpAddress() + "/alerts/stream", disconnectAfter: 5);
        sse.Start(lastEventId: null);
        await EngineHarness.WaitUntil(() => sse.Connected, TimeSpan.FromSeconds(10), () => "the SSE client to connect");

        // Ordinary spenders stay far below the rule; each whale spends 4,000 three times.
        int events = 0;
        using (var producer = EngineHarness.Producer(kafka.BootstrapServers))
        {
            var random = new Random(5);
            for (int i = 0; i < 3_000; i++)
            {
                Produce(producer, $"user-{random.Next(300)}", i, random.Next(1, 50));
                events++;
                if (i % 50 == 49 && i / 50 < Whales * 3)
                {
                    Produce(producer, $"whale-{i / 50 % Whales}", i, 4_000);
                    events++;
                }
            }
            producer.FlushAll();
        }
        await EngineHarness.WaitUntil(() => outputs.Scored == events, TimeSpan.FromSeconds(60), () => $"{events} events scored (so far {outputs.Scored})");

        // What the topic holds is the truth: every whale's second and third event at least.
        var alerts = StreamScoringTests.ReadAll(kafka.BootstrapServers, "alerts")
            .Select(m => Alert.Parser.ParseJson(Encoding.UTF8.GetString(m.Value))).ToList();
        var ids = alerts.Select(a => a.Id).ToHashSet();
        output.WriteLine($"{alerts.Count} alerts committed for {events} events");
        Assert.Equal(alerts.Count, ids.Count);
        Assert.InRange(alerts.Count, 2 * Whales, 3 * Whales);
        Assert.All(alerts, a => Assert.StartsWith("whale-", a.Event.Entity));
        Assert.Equal(alerts.Count, outputs.Alerts);

        // The webhook: each alert delivered (its first delivery counted once), every signature valid,
        // the failed first attempts retried.
        await EngineHarness.WaitUntil(() => ids.IsSubsetOf(receiver.Delivered.Keys), TimeSpan.FromSeconds(60),
            () => $"{ids.Count} alerts delivered to the webhook (so far {receiver.Delivered.Count}; bad signatures {receiver.BadSignatures})");
        Assert.Equal(0, receiver.BadSignatures);
        Assert.Equal(ids.Count, receiver.Delivered.Count);
        Assert.True(receiver.Retried >= Receiver.FailingIds, $"{receiver.Retried} deliveries took a third attempt");
        Assert.All(receiver.Delivered, d => Assert.Equal("inference.alert", d.Value));

        // The endpoint that never answers: every alert set aside after its last attempt.
        await EngineHarness.WaitUntil(() => DeadLetters(kafka).Count >= ids.Count, TimeSpan.FromSeconds(90),
            () => $"{ids.Count} alerts on the dead-letter topic (so far {DeadLetters(kafka).Count})");
        var letters = DeadLetters(kafka);
        Assert.Equal(ids, letters.Select(l => l.Id).ToHashSet());
        Assert.All(letters, l => Assert.Equal(receiver.Address + "/never", l.Url));

        // SSE: the first connection dropped after 5 alerts; resumed with Last-Event-ID, nothing is missed.
        await EngineHarness.WaitUntil(() => sse.Received.Count >= 5, TimeSpan.FromSeconds(10), () => "5 alerts over SSE");
        sse.Stop();
        Assert.Equal(5, sse.Received.Count);
        long last = sse.Received[^1].Sequence;
        var resumed = new SseClient(http, engine.App.HttpAddress() + "/alerts/stream");
        resumed.Start(lastEventId: last);
        await EngineHarness.WaitUntil(() => sse.Received.Count + resumed.Received.Count >= ids.Count, TimeSpan.FromSeconds(10),
            () => $"{ids.Count} alerts over SSE (so far {sse.Received.Count} + {resumed.Received.Count})");
        resumed.Stop();
        var all = sse.Received.Concat(resumed.Received).ToList();
        Assert.Equal(Enumerable.Range(1, ids.Count).Select(i => (long)i), all.Select(a => a.Sequence));
        Assert.Equal(ids, all.Select(a => a.Id).ToHashSet());
    }

    private static void Produce(IProducer<string, byte[]> producer, string entity, int i, int amount) =>
        producer.Produce("events", new Message<string, byte[]>
        {
            Key = entity,
            Value = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{{\"entity\":\"{entity}\",\"ts\":{1_767_225_600_000 + i},\"amount\":{amount}}}")),
        });

    private static List<(string Id, string Url)> DeadLetters(Kafka.EmbeddedKafka kafka) =>
        StreamScoringTests.ReadAll(kafka.BootstrapServers, "alerts.dead-letter")
            .Select(m => (Header(m, "alert-id"), Header(m, "webhook-url"))).ToList();

    private static string Header(Message<string, byte[]> message, string name) =>
        message.Headers.TryGetLastBytes(name, out var bytes) ? Encoding.UTF8.GetString(bytes) : "";

    /// <summary>A webhook receiver on loopback: checks signatures as a Standard Webhooks consumer does.</summary>
    private sealed class Receiver : IAsyncDisposable
    {
        public const int FailingIds = 5;
        private readonly WebApplication _app;
        private readonly byte[] _key;
        private readonly ConcurrentDictionary<string, int> _attempts = new();
        private readonly ConcurrentDictionary<string, int> _failures = new();
        private int _failing;
        private int _badSignatures;
        private int _retried;

        private Receiver(WebApplication app, byte[] key)
        {
            _app = app;
            _key = key;
        }

        public string Address => _app.Urls.First();

        /// <summary>Alert ids delivered, with the payload's type.</summary>
        public ConcurrentDictionary<string, string> Delivered { get; } = new();

        public int BadSignatures => Volatile.Read(ref _badSignatures);

        public int Retried => Volatile.Read(ref _retried);

        public static async Task<Receiver> StartAsync(byte[] key)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            var receiver = new Receiver(app, key);
            app.MapPost("/hook", (Func<HttpContext, Task<IResult>>)receiver.HookAsync);
            app.MapPost("/never", async (HttpContext context) => await Task.Delay(Timeout.Infinite, context.RequestAborted));
            await app.StartAsync();
            return receiver;
        }

        private async Task<IResult> HookAsync(HttpContext context)
        {
            string body = await new StreamReader(context.Request.Body).ReadToEndAsync();
            string id = context.Request.Headers["webhook-id"].ToString();
            string timestamp = context.Request.Headers["webhook-timestamp"].ToString();
            string signature = context.Request.Headers["webhook-signature"].ToString();
            string expected = "v1," + Convert.ToBase64String(HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}")));
            if (signature != expected || !long.TryParse(timestamp, out long seconds) || Math.Abs(DateTimeOffset.UtcNow.ToUnixTimeSeconds() - seconds) > 300)
            {
                Interlocked.Increment(ref _badSignatures);
                return Results.StatusCode(401);
            }
            int attempt = _attempts.AddOrUpdate(id, 1, (_, n) => n + 1);
            // The first alerts seen fail twice (503) before they are taken.
            if (attempt == 1 && Interlocked.Increment(ref _failing) <= FailingIds)
            {
                _failures[id] = 2;
            }
            if (_failures.TryGetValue(id, out int left) && left > 0)
            {
                _failures[id] = left - 1;
                return Results.StatusCode(503);
            }
            if (_failures.ContainsKey(id) && attempt == 3)
            {
                Interlocked.Increment(ref _retried);
            }
            using var json = JsonDocument.Parse(body);
            Delivered.TryAdd(id, json.RootElement.GetProperty("type").GetString()!);
            return Results.NoContent();
        }

        public async ValueTask DisposeAsync() => await _app.DisposeAsync();
    }

    /// <summary>An EventSource-like client: reads id/event/data frames in a background task.</summary>
    private sealed class SseClient(HttpClient http, string url, int disconnectAfter = int.MaxValue)
    {
        private readonly CancellationTokenSource _stop = new();
        private volatile bool _connected;

        public List<(long Sequence, string Id)> Received { get; } = [];

        public bool Connected => _connected;

        public void Start(long? lastEventId) => _ = Task.Run(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (lastEventId is { } last)
            {
                request.Headers.Add("Last-Event-ID", last.ToString(CultureInfo.InvariantCulture));
            }
            try
            {
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, _stop.Token);
                response.EnsureSuccessStatusCode();
                _connected = true;
                using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(_stop.Token));
                // Fields accumulate until the blank line that ends an event, in whatever order they come.
                string? id = null;
                string? data = null;
                while (await reader.ReadLineAsync(_stop.Token) is { } line)
                {
                    if (line.StartsWith("id: ", StringComparison.Ordinal))
                    {
                        id = line[4..];
                    }
                    else if (line.StartsWith("data: ", StringComparison.Ordinal))
                    {
                        data = line[6..];
                    }
                    else if (line.Length == 0 && data is not null)
                    {
                        using var json = JsonDocument.Parse(data);
                        lock (Received)
                        {
                            Received.Add((long.Parse(id!, CultureInfo.InvariantCulture), json.RootElement.GetProperty("id").GetString()!));
                        }
                        (id, data) = (null, null);
                        if (Received.Count >= disconnectAfter)
                        {
                            // Drops the connection mid-stream, as a flaky network does.
                            break;
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Disconnected on purpose.
            }
        });

        public void Stop() => _stop.Cancel();
    }
}

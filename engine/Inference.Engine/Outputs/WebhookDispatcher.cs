using System.Globalization;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Confluent.Kafka;
using Google.Protobuf;
using Inference.Engine.Kafka;
using Inference.Proto.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Inference.Engine.Outputs;

/// <summary>
/// Posts each committed alert to one webhook, signed after the Standard Webhooks convention
/// (<c>webhook-id</c>, <c>webhook-timestamp</c>, <c>webhook-signature: v1,base64(HMAC-SHA256(secret,
/// "id.timestamp.body"))</c>), retried with exponential backoff and jitter (Polly), and set aside on the
/// dead-letter topic after the last attempt. It reads the alerts topic (read_committed) as a consumer
/// group of its own and moves on only once an alert is delivered or set aside: at least once across
/// restarts. The webhook id is the alert's id, the same on every attempt and redelivery.
/// </summary>
internal sealed class WebhookDispatcher : BackgroundService
{
    // Not a timeout: how long a dispatcher whose consumer failed waits before it starts again.
    private const int RestartDelayMs = 1_000;

    private readonly KafkaConnection _kafka;
    private readonly TimeProvider _time;
    private readonly OutputMetrics _metrics;
    private readonly ILogger<WebhookDispatcher> _logger;
    private readonly AlertOptions _alerts;
    private readonly WebhookOptions _hook;
    private readonly byte[] _secret;
    private readonly string _groupId;
    private readonly HttpClient _http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) }) { Timeout = Timeout.InfiniteTimeSpan };
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;

    public WebhookDispatcher(KafkaConnection kafka, OutputMetrics metrics, IOptions<AlertOptions> alerts, TimeProvider time, ILogger<WebhookDispatcher> logger, int index)
    {
        _time = time;
        _kafka = kafka;
        _metrics = metrics;
        _logger = logger;
        _alerts = alerts.Value;
        _hook = _alerts.Webhooks[index];
        _secret = Secret(_hook.Secret);
        _groupId = $"{kafka.Options.GroupId}-webhook-{index}";
        _pipeline = new ResiliencePipelineBuilder<HttpResponseMessage> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = _hook.MaxAttempts - 1,
                Delay = TimeSpan.FromMilliseconds(_hook.InitialDelayMs),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                MaxDelay = TimeSpan.FromMinutes(5),
                ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                    .Handle<HttpRequestException>()
                    .Handle<TimeoutRejectedException>()
                    .HandleResult(response => !response.IsSuccessStatusCode),
                OnRetry = _ =>
                {
                    _metrics.Retry();
                    return ValueTask.CompletedTask;
                },
            })
            .AddTimeout(TimeSpan.FromMilliseconds(_hook.TimeoutMs))
            .Build();
    }

    /// <summary>The key bytes: a Standard Webhooks secret (<c>whsec_</c> + base64) decoded, any other text as UTF-8.</summary>
    internal static byte[] Secret(string secret) =>
        secret.StartsWith("whsec_", StringComparison.Ordinal) ? Convert.FromBase64String(secret["whsec_".Length..]) : Encoding.UTF8.GetBytes(secret);

    /// <summary>The <c>webhook-signature</c> value for one attempt.</summary>
    internal static string Sign(byte[] secret, string id, long timestamp, string body) =>
        "v1," + Convert.ToBase64String(HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{id}.{timestamp}.{body}"))));

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => RunAsync(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    private async Task RunAsync(CancellationToken stopping)
    {
        OutputsLog.WebhookStarted(_logger, _hook.Url, _alerts.Topic, _groupId, _hook.MaxAttempts, _alerts.DeadLetterTopic);
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await DeliverAsync(stopping);
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                return;
            }
            catch (Exception error) when (error is KafkaException or InvalidOperationException or IOException)
            {
                OutputsLog.WebhookFailed(_logger, _hook.Url, error.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(RestartDelayMs), _time, stopping);
            }
        }
    }

    private async Task DeliverAsync(CancellationToken stopping)
    {
        var config = _kafka.ConsumerConfig(_groupId);
        config.IsolationLevel = IsolationLevel.ReadCommitted;
        config.EnableAutoOffsetStore = false;
        using var consumer = new ConsumerBuilder<string, byte[]>(config).Build();
        using var deadLetters = new ProducerBuilder<string, byte[]>(_kafka.ProducerConfig()).Build();
        consumer.Subscribe(_alerts.Topic);
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                var result = consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result?.Message is null)
                {
                    continue;
                }
                var alert = Parse(result.Message);
                string body = Body(alert);
                var (delivered, attempts, reason) = await PostAsync(alert.Id, body, stopping);
                if (delivered)
                {
                    _metrics.DeliveredOne();
                }
                else
                {
                    // Set aside for an operator, then move on: one dead endpoint must not hold the rest back.
                    var letter = new Message<string, byte[]>
                    {
                        Key = result.Message.Key,
                        Value = result.Message.Value,
                        Headers = new Headers
                        {
                            { "webhook-url", Encoding.UTF8.GetBytes(_hook.Url) },
                            { "webhook-attempts", Encoding.UTF8.GetBytes(attempts.ToString(CultureInfo.InvariantCulture)) },
                            { "error", Encoding.UTF8.GetBytes(reason) },
                            { "alert-id", Encoding.UTF8.GetBytes(alert.Id) },
                        },
                    };
                    await deadLetters.ProduceAsync(_alerts.DeadLetterTopic, letter, stopping);
                    _metrics.DeadLetteredOne();
                    OutputsLog.DeadLettered(_logger, alert.Id, _hook.Url, attempts, reason, _alerts.DeadLetterTopic);
                }
                consumer.StoreOffset(result);
            }
        }
        finally
        {
            try
            {
                consumer.Commit();
            }
            catch (KafkaException)
            {
                // Nothing stored yet, or the broker is gone: the alerts are delivered again (at least once).
            }
            consumer.Close();
        }
    }

    /// <summary>One alert through the retry pipeline: (delivered, attempts made, the last failure).</summary>
    private async Task<(bool, int, string)> PostAsync(string id, string body, CancellationToken stopping)
    {
        int attempts = 0;
        string reason = "";
        try
        {
            using var response = await _pipeline.ExecuteAsync(async token =>
            {
                attempts++;
                long timestamp = _time.GetUtcNow().ToUnixTimeSeconds();
                using var request = new HttpRequestMessage(HttpMethod.Post, _hook.Url)
                {
                    Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
                };
                request.Headers.Add("webhook-id", id);
                request.Headers.Add("webhook-timestamp", timestamp.ToString(CultureInfo.InvariantCulture));
                request.Headers.Add("webhook-signature", Sign(_secret, id, timestamp, body));
                var answer = await _http.SendAsync(request, token);
                if (!answer.IsSuccessStatusCode)
                {
                    reason = $"HTTP {(int)answer.StatusCode}";
                }
                return answer;
            }, stopping);
            return (response.IsSuccessStatusCode, attempts, reason);
        }
        catch (Exception error) when (error is HttpRequestException or TimeoutRejectedException)
        {
            return (false, attempts, error.Message);
        }
    }

    private static Alert Parse(Message<string, byte[]> message)
    {
        var type = message.Headers?.TryGetLastBytes("content-type", out var bytes) == true ? Encoding.UTF8.GetString(bytes) : "application/json";
        return type.StartsWith("application/x-protobuf", StringComparison.Ordinal)
            ? Alert.Parser.ParseFrom(message.Value)
            : Alert.Parser.ParseJson(Encoding.UTF8.GetString(message.Value));
    }

    /// <summary>The Standard Webhooks payload: type, timestamp and the alert as data.</summary>
    private string Body(Alert alert)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("type", "inference.alert");
            json.WriteString("timestamp", _time.GetUtcNow());
            json.WritePropertyName("data");
            json.WriteRawValue(JsonFormatter.Default.Format(alert));
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }
}

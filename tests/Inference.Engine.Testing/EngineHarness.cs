using Confluent.Kafka;
using Grpc.Net.Client;
using Inference.Engine.Hosting;
using Inference.Engine.Kafka;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Inference.Engine.Testing;

/// <summary>A real engine host on a loopback port with a real gRPC channel to it.</summary>
internal sealed class EngineHarness : IAsyncDisposable
{
    /// <summary>How often a wait checks its condition again.</summary>
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);

    private EngineHarness(WebApplication app)
    {
        App = app;
        Address = app.GrpcAddress();
        Channel = GrpcChannel.ForAddress(Address);
    }

    public WebApplication App { get; }

    public string Address { get; }

    public GrpcChannel Channel { get; }

    public T Get<T>()
        where T : notnull => App.Services.GetRequiredService<T>();

    public InferenceMetrics Metrics => Get<InferenceMetrics>();

    public string BootstrapServers => Get<KafkaConnection>().BootstrapServers;

    /// <summary>Settings every test engine starts from: CPU accelerator, a free port, quick group joins.</summary>
    public static Dictionary<string, string?> BaseSettings() => new()
    {
        ["Inference:Serving:Port"] = "0",
        ["Inference:Serving:HttpPort"] = "0",
        ["Inference:Features:Accelerator"] = "Cpu",
        ["Inference:Features:MaxBatchEvents"] = "512",
        ["Inference:Features:Capacity"] = "10000",
        ["Inference:Kafka:SessionTimeoutMs"] = "6000",
        ["Inference:Kafka:EmbeddedPartitions"] = "4",
        ["Inference:Sync:IntervalMs"] = "200",
        ["Logging:LogLevel:Default"] = "Warning",
    };

    /// <summary>Declares features through configuration keys, as an appsettings.json section would.</summary>
    public static void Declare(Dictionary<string, string?> settings, params (string Name, string Aggregation, string? Field, string? Extra)[] features)
    {
        for (int i = 0; i < features.Length; i++)
        {
            var (name, aggregation, field, extra) = features[i];
            string at = $"Inference:Features:Definitions:{i}:";
            settings[at + "Name"] = name;
            settings[at + "Aggregation"] = aggregation;
            settings[at + "Field"] = field;
            settings[at + "Transform"] = "SignedLog1p";
            if (extra is not null)
            {
                var (key, value) = (extra[..extra.IndexOf('=')], extra[(extra.IndexOf('=') + 1)..]);
                settings[at + key] = value;
            }
        }
    }

    /// <summary>Declares a model's id inputs through configuration keys (<c>Inference:Model:Ids</c>), as an appsettings.json section would.</summary>
    public static void DeclareIds(Dictionary<string, string?> settings, params (string Name, string Source, int Dimension)[] ids)
    {
        for (int i = 0; i < ids.Length; i++)
        {
            string at = $"Inference:Model:Ids:{i}:";
            settings[at + "Name"] = ids[i].Name;
            settings[at + "Source"] = ids[i].Source;
            settings[at + "Dimension"] = ids[i].Dimension.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    public static async Task<EngineHarness> StartAsync(Dictionary<string, string?> settings)
    {
        var app = InferenceApplication.Build([], settings, logging => logging.AddSimpleConsole(o => o.SingleLine = true));
        await app.StartAsync();
        return new EngineHarness(app);
    }

    public static IProducer<string, byte[]> Producer(string bootstrapServers) =>
        new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = bootstrapServers, LingerMs = 2, EnableIdempotence = true }).Build();

    /// <summary>Waits for a condition, failing with what was expected when the deadline passes.</summary>
    public static Task WaitUntil(Func<bool> condition, TimeSpan timeout, Func<string> expectation) =>
        WaitUntilAsync(() => Task.FromResult(condition()), timeout, expectation);

    /// <summary>Waits for a condition that takes a call to check, failing with what was expected when the deadline passes.</summary>
    public static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> expectation)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"Timed out after {timeout.TotalSeconds:0} s waiting for: {expectation()}");
            }
            await Task.Delay(PollInterval);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

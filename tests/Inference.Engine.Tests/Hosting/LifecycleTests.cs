using Inference.Engine.Checkpoints;
using Inference.Engine.Features;
using Inference.Engine.Hosting;
using Inference.Engine.Kafka;
using Inference.Engine.Outputs;
using Inference.Engine.Pool;
using Inference.Engine.Sync;
using Inference.Engine.Training;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Inference.Engine.Tests;

/// <summary>Every role starts the stages it composes in the order <see cref="EngineLifecycle"/> writes, becomes ready, and stops.</summary>
public sealed class LifecycleTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("inference-lifecycle-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task A_parameter_server_runs_its_shard_checkpoints_alone_and_stops()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Role"] = "Ps";
        settings["Inference:Checkpoints:Directory"] = Path.Combine(_root, "ps");
        await StartReadyAndStop(settings, [typeof(ShardCheckpointer)]);
    }

    [Fact]
    public async Task A_single_node_with_checkpoints_stream_scoring_and_a_webhook_starts_them_in_order_and_stops()
    {
        var settings = Node();
        settings["Inference:Checkpoints:Directory"] = Path.Combine(_root, "node");
        settings["Inference:Outputs:Scores:Enabled"] = "true";
        settings["Inference:Outputs:Alerts:Webhooks:0:Url"] = "http://127.0.0.1:9/hook";
        settings["Inference:Outputs:Alerts:Webhooks:0:Secret"] = "whsec_" + Convert.ToBase64String(new byte[32]);
        await StartReadyAndStop(settings,
            [typeof(KafkaConnection), typeof(DeviceExecutor), typeof(CheckpointRestorer), typeof(ModelStartup), typeof(TrainingService), typeof(StreamScorer),
             typeof(WebhookDispatcher), typeof(EventIngestor), typeof(CheckpointWriter)]);
    }

    [Fact]
    public async Task A_node_that_does_not_train_runs_no_trainer()
    {
        var settings = Node();
        settings["Inference:Training:Enabled"] = "false";
        await StartReadyAndStop(settings, [typeof(KafkaConnection), typeof(DeviceExecutor), typeof(CheckpointRestorer), typeof(ModelStartup), typeof(EventIngestor), typeof(CheckpointWriter)]);
    }

    [Fact]
    public async Task A_pool_worker_checks_its_parameter_server_first_and_stops()
    {
        var psSettings = EngineHarness.BaseSettings();
        psSettings["Inference:Role"] = "Ps";
        await using var ps = await EngineHarness.StartAsync(psSettings);
        var settings = Node();
        settings["Inference:Role"] = "Worker";
        settings["Inference:Sync:ParameterServer"] = ps.Address;
        settings["Inference:Sync:WorkerId"] = "worker-a";
        await StartReadyAndStop(settings,
            [typeof(KafkaConnection), typeof(ParameterServerCheck), typeof(DeviceExecutor), typeof(CheckpointRestorer), typeof(PoolMembership), typeof(ModelStartup),
             typeof(TrainingService), typeof(EventIngestor), typeof(CheckpointWriter)]);
    }

    /// <summary>A node on a broker of its own (the engine creates the topics it uses there).</summary>
    private static Dictionary<string, string?> Node()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        EngineHarness.Declare(settings, ("count", "Count", null, null), ("amount_sum", "Sum", "amount", null));
        return settings;
    }

    /// <summary>Starts the engine, checks which of its services run and in what order, waits until it is ready, then stops it.</summary>
    private static async Task StartReadyAndStop(Dictionary<string, string?> settings, Type[] expected)
    {
        await using var engine = await EngineHarness.StartAsync(settings);
        var running = engine.App.Services.GetServices<IHostedService>().Select(s => s.GetType()).Where(EngineLifecycle.StartOrder.Contains).ToList();
        Assert.Equal(expected, running);
        Assert.Equal(running.OrderBy(t => IndexOf(t)), running);
        await EngineHarness.WaitUntil(() => engine.Get<Readiness>().Problem() is null, TimeSpan.FromSeconds(60),
            () => $"the engine to be ready (it says: {engine.Get<Readiness>().Problem()})");

        using var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await engine.App.StopAsync(stopping.Token);
        Assert.False(stopping.IsCancellationRequested, "the engine took longer than 60 s to stop");
        if (engine.App.Services.GetService<DeviceExecutor>() is { } executor)
        {
            Assert.True(executor.IsStopping, "the device executor has stopped");
        }
    }

    private static int IndexOf(Type type) => EngineLifecycle.StartOrder.ToList().IndexOf(type);
}

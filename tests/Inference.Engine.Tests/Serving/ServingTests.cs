using Grpc.Health.V1;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Serving;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Proto.V1;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using System.Diagnostics.Metrics;

namespace Inference.Engine.Tests;

/// <summary>The serving lane's edges: load shedding, calls that expire before launch, and the standard health service.</summary>
public sealed class ServingTests
{
    [Fact]
    public async Task A_full_queue_refuses_at_once_and_expired_or_cancelled_calls_are_dropped_before_launch()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        var serving = new ServingMetrics(meters, TimeProvider.System);
        var definitions = new List<FeatureDefinition> { new() { Name = "count", Aggregation = Aggregation.Count } };
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var executor = new DeviceExecutor(device, new FeaturePlan(definitions), new FeatureOptions { Definitions = definitions, InitialCapacity = 16, MaxBatchEvents = 16 },
            new ServingOptions { MaxQueuedRequests = 3 }.Gathers, new FeatureMetrics(meters), serving, TimeProvider.System, NullLogger<DeviceExecutor>.Instance);
        var handler = new RecordingHandler();
        using var cancelled = new CancellationTokenSource();

        // Not started yet: requests wait in the queue.
        var expired = new Probe(handler, CancellationToken.None, DateTime.UtcNow.AddMilliseconds(-1));
        var dropped = new Probe(handler, cancelled.Token, DateTime.MaxValue);
        var served = new Probe(handler, CancellationToken.None, DateTime.MaxValue);
        Assert.True(executor.TryEnqueue(expired));
        Assert.True(executor.TryEnqueue(dropped));
        Assert.True(executor.TryEnqueue(served));
        Assert.False(executor.TryEnqueue(new Probe(handler, CancellationToken.None, DateTime.MaxValue)), "a fourth request must be shed: the queue holds 3");
        await cancelled.CancelAsync();

        await executor.StartAsync(CancellationToken.None);
        Assert.Equal(GatherOutcome.DeadlineExceeded, await expired.Outcome);
        Assert.Equal(GatherOutcome.Cancelled, await dropped.Outcome);
        Assert.Null(await served.Outcome);
        Assert.Equal(1, handler.Batches);
        Assert.Equal(2, serving.AbandonedRequests);
        Assert.True(executor.TryEnqueue(new Probe(handler, CancellationToken.None, DateTime.MaxValue)), "the queue drained: room again");
        await executor.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task Read_your_writes_waiters_and_feature_reads_are_bounded()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<IMeterFactory>();
        var definitions = new List<FeatureDefinition> { new() { Name = "count", Aggregation = Aggregation.Count } };
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var executor = new DeviceExecutor(device, new FeaturePlan(definitions), new FeatureOptions { Definitions = definitions, InitialCapacity = 16, MaxBatchEvents = 16 },
            new ServingOptions { MaxWatermarkWaiters = 2, MaxQueuedReads = 2 }.Gathers, new FeatureMetrics(meters), new ServingMetrics(meters, TimeProvider.System), TimeProvider.System, NullLogger<DeviceExecutor>.Instance);
        using var ended = new CancellationTokenSource();
        PartitionOffset[] far = [new("events", 0, 1_000_000)];
        var first = executor.WaitForAsync(far, ended.Token);
        var second = executor.WaitForAsync(far, ended.Token);
        Assert.NotNull(first);
        Assert.NotNull(second);
        Assert.Null(executor.WaitForAsync(far, ended.Token));
        // Not started: reads wait in their queue.
        Assert.NotNull(executor.TryReadAsync((_, _) => 1));
        Assert.NotNull(executor.TryReadAsync((_, _) => 2));
        Assert.Null(executor.TryReadAsync((_, _) => 3));

        await executor.StartAsync(CancellationToken.None);
        await ended.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => first!);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => second!);
        // The waiters that ended and the reads that ran made room again.
        await EngineHarness.WaitUntil(() => executor.WaitForAsync(far, CancellationToken.None) is not null, TimeSpan.FromSeconds(10), () => "room for a waiter again");
        await EngineHarness.WaitUntil(() => executor.TryReadAsync((_, _) => 4) is not null, TimeSpan.FromSeconds(10), () => "room for a read again");
        await executor.StopAsync(CancellationToken.None);
    }

    [Fact]
    public async Task The_standard_health_service_answers_serving_next_to_score()
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Kafka:Embedded"] = "true";
        settings["Inference:Training:Enabled"] = "false";
        await using var engine = await EngineHarness.StartAsync(settings);
        var health = await new Health.HealthClient(engine.Channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        var score = await new ScoringService.ScoringServiceClient(engine.Channel).ScoreAsync(
            new ScoreRequest { Rows = { new ScoreRow { Entity = "nobody", RequestId = "r-1" } } }, deadline: DateTime.UtcNow.AddSeconds(10));
        Assert.Equal(["r-1"], score.RequestIds);
        Assert.InRange(score.Scores[0], 0f, 1f);
    }

    private sealed class Probe(IGatheredBatchHandler handler, CancellationToken cancellation, DateTime deadline)
        : GatherRequest(handler, [42UL], 1, cancellation, deadline)
    {
        private readonly TaskCompletionSource<GatherOutcome?> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<GatherOutcome?> Outcome => _outcome.Task;

        public void Served() => _outcome.TrySetResult(null);

        public override void Abandon(GatherOutcome outcome) => _outcome.TrySetResult(outcome);
    }

    private sealed class RecordingHandler : IGatheredBatchHandler
    {
        public int Batches { get; private set; }

        public void Handle(ReadOnlySpan<GatherRequest> requests, float[] features, int width, float[]? embeddings, ulong[]? ids, Features.FeatureWatermark watermark)
        {
            Batches++;
            foreach (var request in requests)
            {
                ((Probe)request).Served();
            }
        }
    }
}

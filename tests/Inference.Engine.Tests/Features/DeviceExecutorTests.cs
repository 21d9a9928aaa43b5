using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Apache.Arrow;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Serving;
using Inference.Kernels.Accelerators;
using Inference.Kernels.Features;
using Inference.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Inference.Engine.Tests;

/// <summary>
/// The device executor under concurrent load: many callers gather while batches are applied, the
/// table grows and the TTL scan evicts. Every answer is checked against the oracle as of the watermark
/// it carries: a read that saw part of a batch, or rows of two batches, fails.
/// </summary>
public sealed class DeviceExecutorTests
{
    private const int Seed = 4242;
    private const int HotEntities = 40;
    private const int ColdPerBatch = 60;
    private const int Batches = 150;
    private const long StepMs = 1_000;
    private const long TtlMs = 20_000;

    private static readonly FeatureDefinition[] Definitions =
    [
        new() { Name = "count", Aggregation = Aggregation.Count },
        new() { Name = "amount_sum", Aggregation = Aggregation.Sum, Field = "amount" },
        new() { Name = "amount_max", Aggregation = Aggregation.Max, Field = "amount" },
        new() { Name = "amount_last", Aggregation = Aggregation.Last, Field = "amount" },
        new() { Name = "amount_decayed", Aggregation = Aggregation.DecayedSum, Field = "amount", HalfLifeMs = 30_000 },
        new() { Name = "count_30s", Aggregation = Aggregation.WindowCount, HorizonMs = 30_000, Buckets = 6, AllowedLatenessMs = 5_000 },
    ];

    [Theory]
    [InlineData(AcceleratorKind.Cpu)]
    [InlineData(AcceleratorKind.CpuSimulator)]
    public async Task Concurrent_gathers_during_applies_growth_and_ttl_match_the_oracle_at_their_watermark(AcceleratorKind kind)
    {
        var plan = new FeaturePlan(Definitions);
        var options = new FeatureOptions
        {
            Definitions = [.. Definitions],
            InitialCapacity = 16,
            Capacity = 100_000,
            MaxBatchEvents = 512,
            EntityTtlMs = TtlMs,
            EvictionScanIntervalMs = 1,
        };
        var serving = new ServingOptions { MaxBatchRows = 256, MaxQueuedRequests = 4_096 };
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new FeatureMetrics(services.GetRequiredService<IMeterFactory>());
        var servingMetrics = new ServingMetrics(services.GetRequiredService<IMeterFactory>(), TimeProvider.System);
        using var device = DeviceContext.Create(kind);
        using var executor = new DeviceExecutor(device, plan, options, serving.Gathers, metrics, servingMetrics, TimeProvider.System, NullLogger<DeviceExecutor>.Instance);
        await executor.StartAsync(CancellationToken.None);

        // The stream: every hot entity in every batch (never idle long enough for the TTL), plus entities
        // seen once that the TTL evicts later and whose arrival makes the table grow.
        var random = new Random(Seed);
        var oracle = new FeatureOracle(plan);
        var expected = new ConcurrentDictionary<long, float[]>();
        var hot = Enumerable.Range(0, HotEntities).Select(i => (ulong)(i + 1) * 0x9E3779B97F4A7C15UL).ToArray();
        long clock = 1_767_225_600_000;
        var handler = new CapturingHandler();
        var stop = new CancellationTokenSource();
        long answered = 0, rowsAnswered = 0;
        var failures = new ConcurrentQueue<string>();

        var callers = Enumerable.Range(0, 64).Select(c => Task.Run(async () =>
        {
            var callerRandom = new Random(Seed + c);
            while (!stop.IsCancellationRequested)
            {
                int rows = callerRandom.Next(1, 9);
                var entities = new ulong[rows];
                for (int r = 0; r < rows; r++)
                {
                    entities[r] = hot[callerRandom.Next(HotEntities)];
                }
                var request = new CapturedRequest(handler, entities);
                Assert.True(executor.TryEnqueue(request), "the queue has room for 64 callers");
                var (features, watermark) = await request.Answer;
                Interlocked.Increment(ref answered);
                Interlocked.Add(ref rowsAnswered, rows);
                long applied = watermark.Partitions.Count == 0 ? -1 : watermark.Partitions[0].Offset;
                if (!expected.TryGetValue(applied, out var state))
                {
                    failures.Enqueue($"seed {Seed}: a response carries watermark offset {applied}, which no applied batch produced");
                    continue;
                }
                for (int r = 0; r < rows; r++)
                {
                    int h = System.Array.IndexOf(hot, entities[r]);
                    for (int f = 0; f < plan.Count; f++)
                    {
                        float want = state[h * plan.Count + f];
                        float got = features[r * plan.Count + f];
                        if (Math.Abs(got - want) > 1e-5 * Math.Max(1, Math.Abs(want)))
                        {
                            failures.Enqueue($"seed {Seed}: batch {applied}, entity {h}, feature {plan.Definitions[f].Name}: read {got}, the oracle says {want}");
                        }
                    }
                }
            }
        })).ToArray();

        expected[-1] = Expected(oracle, plan, hot, 0);
        long newest = 0;
        for (int b = 0; b < Batches; b++)
        {
            var keys = new List<ulong>(hot);
            for (int i = 0; i < ColdPerBatch; i++)
            {
                keys.Add((ulong)(1_000_000 + b * ColdPerBatch + i) * 0xD6E8FEB86659FD93UL);
            }
            var times = keys.Select(_ => clock + random.Next(0, (int)StepMs)).ToArray();
            var amounts = keys.Select(_ => (float)Math.Round(random.NextDouble() * 100, 2)).ToArray();
            clock += StepMs;
            oracle.Apply([.. keys], times, [amounts], []);
            newest = Math.Max(newest, times.Max());
            // Record what a read at this watermark must see before the executor can publish it.
            expected[b] = Expected(oracle, plan, hot, newest);
            executor.Apply(Batch([.. keys], times, amounts), [new PartitionOffset("events", 0, b)]);
        }
        // The callers go on reading the final state a while: 64 more answers after the last apply.
        long answeredAtLastApply = Interlocked.Read(ref answered);
        await EngineHarness.WaitUntil(() => Interlocked.Read(ref answered) >= answeredAtLastApply + 64, TimeSpan.FromSeconds(30),
            () => $"seed {Seed}: 64 answers after the last apply (so far {Interlocked.Read(ref answered) - answeredAtLastApply})");
        await stop.CancelAsync();
        await Task.WhenAll(callers);
        await executor.StopAsync(CancellationToken.None);

        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(10)));
        Assert.True(answered > 64, $"seed {Seed}: only {answered} requests were answered");
        Assert.True(executor.Entities < HotEntities + Batches * ColdPerBatch, $"seed {Seed}: the TTL scan should have evicted idle entities ({executor.Entities} held)");
        Assert.True(metrics.EvictedEntities > 0, $"seed {Seed}: expected TTL evictions");
        Assert.True(servingMetrics.Batches < answered, $"seed {Seed}: {answered} requests in {servingMetrics.Batches} batches: concurrent requests should share gathers");
    }

    /// <summary>The hot entities' transformed features as serving reads them: as of the newest event time applied.</summary>
    [Fact]
    public async Task Served_requests_are_not_kept_alive_by_the_queue()
    {
        // A served call's whole graph (request, context, response) hangs off its queue entry: an entry the queue
        // still references after its call was answered keeps that graph alive into older generations.
        var plan = new FeaturePlan(Definitions);
        var options = new FeatureOptions { Definitions = [.. Definitions], InitialCapacity = 16, Capacity = 1_000, MaxBatchEvents = 64 };
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new FeatureMetrics(services.GetRequiredService<IMeterFactory>());
        var servingMetrics = new ServingMetrics(services.GetRequiredService<IMeterFactory>(), TimeProvider.System);
        using var device = DeviceContext.Create(AcceleratorKind.Cpu);
        using var executor = new DeviceExecutor(device, plan, options, new ServingOptions().Gathers, metrics, servingMetrics, TimeProvider.System, NullLogger<DeviceExecutor>.Instance);
        await executor.StartAsync(CancellationToken.None);

        var served = ServeOneByOne(executor, new CapturingHandler(), 50);
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.Equal(0, served.Count(reference => reference.IsAlive));
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static WeakReference[] ServeOneByOne(DeviceExecutor executor, CapturingHandler handler, int calls)
    {
        var served = new WeakReference[calls];
        for (int i = 0; i < calls; i++)
        {
            var request = new CapturedRequest(handler, [(ulong)i + 1]);
            Assert.True(executor.TryEnqueue(request));
            Assert.True(request.Answer.Wait(TimeSpan.FromMinutes(1)), "the executor answers");
            served[i] = new WeakReference(request);
        }
        return served;
    }

    private static float[] Expected(FeatureOracle oracle, FeaturePlan plan, ulong[] hot, long now)
    {
        var values = new float[hot.Length * plan.Count];
        for (int h = 0; h < hot.Length; h++)
        {
            for (int f = 0; f < plan.Count; f++)
            {
                values[h * plan.Count + f] = oracle.Entities.Contains(FeatureTable.TableKey(hot[h])) ? (float)oracle.Value(hot[h], f, now) : (float)plan.Definitions[f].Default;
            }
        }
        return values;
    }

    private static RecordBatch Batch(ulong[] keys, long[] times, float[] amounts) =>
        new RecordBatch.Builder()
            .Append("entity", false, new UInt64Array.Builder().AppendRange(keys).Build())
            .Append("ts", false, new Int64Array.Builder().AppendRange(times).Build())
            .Append("amount", false, new FloatArray.Builder().AppendRange(amounts).Build())
            .Build();

    private sealed class CapturedRequest(IGatheredBatchHandler handler, ulong[] entities)
        : GatherRequest(handler, entities, entities.Length, CancellationToken.None, DateTime.MaxValue)
    {
        private readonly TaskCompletionSource<(float[], FeatureWatermark)> _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<(float[] Features, FeatureWatermark Watermark)> Answer => _answer.Task;

        public void Complete(float[] features, FeatureWatermark watermark) => _answer.SetResult((features, watermark));

        public override void Abandon(GatherOutcome outcome) => _answer.SetException(new InvalidOperationException($"abandoned: {outcome}"));
    }

    private sealed class CapturingHandler : IGatheredBatchHandler
    {
        public void Handle(ReadOnlySpan<GatherRequest> requests, float[] features, int width, float[]? embeddings, ulong[]? ids, FeatureWatermark watermark)
        {
            int at = 0;
            foreach (var request in requests)
            {
                ((CapturedRequest)request).Complete(features.AsSpan(at * width, request.Rows * width).ToArray(), watermark);
                at += request.Rows;
            }
        }
    }
}

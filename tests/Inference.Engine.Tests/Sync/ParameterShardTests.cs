using Grpc.Core;
using Inference.Engine.Checkpoints;
using Inference.Engine.Sync;
using Inference.Models.Parameters;
using Inference.Proto.V1;

namespace Inference.Engine.Tests;

/// <summary>
/// The parameter server's push semantics: at most once per worker sequence, bounded staleness, and
/// refusal of pushes that are not finite or too large (through a real gRPC client to a Ps host).
/// </summary>
public sealed class ParameterShardTests
{
    private static ParameterSet Set(params float[] values) => new([new NamedParameter("layers.linear.weight", [1, values.Length], values)]);

    [Fact]
    public async Task A_push_retried_after_a_lost_response_is_applied_once()
    {
        await using var ps = await StartPs();
        var client = new ParameterService.ParameterServiceClient(ps.Channel);
        await client.PushAsync(Push("a", 0, 0, initialize: true, 1f, 1f));
        var first = await client.PushAsync(Push("a", 1, 1, initialize: false, 0.5f, 0.5f));
        // The same push again, as a worker sends it when the first response never came back.
        var again = await client.PushAsync(Push("a", 1, 1, initialize: false, 0.5f, 0.5f));
        Assert.False(first.Duplicate);
        Assert.True(again.Duplicate);
        Assert.Equal(first.Version, again.Version);
        var pulled = await client.PullAsync(new PullRequest { WorkerId = "a" });
        Assert.Equal([1.5f, 1.5f], pulled.Tensors[0].Values);
        // Another worker's sequence numbers are its own.
        var other = await client.PushAsync(Push("b", 1, first.Version, initialize: false, 1f, 1f));
        Assert.False(other.Duplicate);
        Assert.Equal([2.5f, 2.5f], (await client.PullAsync(new PullRequest { WorkerId = "b" })).Tensors[0].Values);
    }

    [Theory]
    [InlineData("Sum", 3f)]
    [InlineData("Mean", 2f)]
    public async Task Two_workers_deltas_are_summed_or_averaged_as_configured(string merge, float expected)
    {
        await using var ps = await StartPs(merge: merge);
        var client = new ParameterService.ParameterServiceClient(ps.Channel);
        await client.PushAsync(Push("a", 0, 0, initialize: true, 1f, 1f));
        // A first round of empty steps: both workers have pushed lately.
        await client.PushAsync(Push("a", 1, 1, initialize: false, 0f, 0f));
        await client.PushAsync(Push("b", 1, 1, initialize: false, 0f, 0f));
        // Both step by +1: summed, the weights move by 2; averaged, by 1.
        await client.PushAsync(Push("a", 2, 3, initialize: false, 1f, 1f));
        await client.PushAsync(Push("b", 2, 3, initialize: false, 1f, 1f));
        var pulled = await client.PullAsync(new PullRequest { WorkerId = "a" });
        Assert.Equal([expected, expected], pulled.Tensors[0].Values);
    }

    [Theory]
    [InlineData(float.NaN, "not finite")]
    [InlineData(float.PositiveInfinity, "not finite")]
    [InlineData(1e6f, "norm")]
    public async Task A_push_that_is_not_finite_or_too_large_is_refused_and_changes_nothing(float value, string reason)
    {
        await using var ps = await StartPs();
        var client = new ParameterService.ParameterServiceClient(ps.Channel);
        await client.PushAsync(Push("a", 0, 0, initialize: true, 1f, 1f));
        var error = await Assert.ThrowsAsync<RpcException>(() => client.PushAsync(Push("a", 1, 1, initialize: false, value, 0f)).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(reason, error.Status.Detail);
        var pulled = await client.PullAsync(new PullRequest { WorkerId = "a" });
        Assert.Equal(1, pulled.Version);
        Assert.Equal([1f, 1f], pulled.Tensors[0].Values);
        Assert.Equal(1, ps.Get<SyncMetrics>().RefusedPushes);
    }

    [Fact]
    public async Task A_worker_too_many_versions_behind_must_pull_before_it_pushes()
    {
        await using var ps = await StartPs(maxStaleness: 2);
        var client = new ParameterService.ParameterServiceClient(ps.Channel);
        await client.PushAsync(Push("a", 0, 0, initialize: true, 0f, 0f));
        long version = 1;
        for (ulong s = 1; s <= 4; s++)
        {
            version = (await client.PushAsync(Push("a", s, version, initialize: false, 0.1f, 0.1f))).Version;
        }
        // Worker b last pulled version 1; the shard is at 5.
        var error = await Assert.ThrowsAsync<RpcException>(() => client.PushAsync(Push("b", 1, 1, initialize: false, 1f, 1f)).ResponseAsync);
        Assert.Equal(StatusCode.FailedPrecondition, error.StatusCode);
        Assert.Contains("pull", error.Status.Detail);
        Assert.Equal(version, (await client.PullAsync(new PullRequest { WorkerId = "b" })).Version);
        // Within the bound it is taken.
        Assert.False((await client.PushAsync(Push("b", 2, version - 2, initialize: false, 1f, 1f))).Duplicate);
    }

    [Fact]
    public async Task A_parameter_server_restarts_from_its_checkpoint_with_its_version_parameters_and_applied_pushes()
    {
        string directory = Path.Combine(Path.GetTempPath(), "inference-ps-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using (var ps = await StartPs(checkpoints: directory))
            {
                var client = new ParameterService.ParameterServiceClient(ps.Channel);
                await client.PushAsync(Push("a", 0, 0, initialize: true, 1f, 1f));
                await client.PushAsync(Push("a", 1, 1, initialize: false, 0.5f, 0.5f));
                // A checkpoint at version 2 (the interval's), then one more push the final checkpoint holds.
                await EngineHarness.WaitUntil(() => ShardCheckpoints.ReadNewest(directory, (_, _) => { })?.State.Version == 2, TimeSpan.FromSeconds(10), () => "a checkpoint at version 2");
                await client.PushAsync(Push("b", 1, 2, initialize: false, 1f, 1f));
            }
            await using (var ps = await StartPs(checkpoints: directory))
            {
                var client = new ParameterService.ParameterServiceClient(ps.Channel);
                var pulled = await client.PullAsync(new PullRequest { WorkerId = "a" });
                Assert.Equal(3, pulled.Version);
                Assert.Equal([2.5f, 2.5f], pulled.Tensors[0].Values);
                // Pushes applied before the restart are still known: their retries are not applied again.
                Assert.True((await client.PushAsync(Push("a", 1, 1, initialize: false, 0.5f, 0.5f))).Duplicate);
                Assert.True((await client.PushAsync(Push("b", 1, 2, initialize: false, 1f, 1f))).Duplicate);
            }
            // The newest checkpoint damaged (as by a crash of the disk under it): the one before it is restored.
            string newest = CheckpointFilesOf(directory).Last();
            File.WriteAllText(Path.Combine(newest, "shard.json"), "{\"version\": 99");
            await using (var ps = await StartPs(checkpoints: directory))
            {
                var client = new ParameterService.ParameterServiceClient(ps.Channel);
                var pulled = await client.PullAsync(new PullRequest { WorkerId = "a" });
                Assert.Equal(2, pulled.Version);
                Assert.Equal([1.5f, 1.5f], pulled.Tensors[0].Values);
                Assert.False((await client.PushAsync(Push("b", 1, 2, initialize: false, 1f, 1f))).Duplicate);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task A_model_of_ten_million_weights_is_pushed_and_pulled_whole()
    {
        // 40 MB a message: beyond gRPC's default 4 MiB and Kestrel's 30 MB request body.
        await using var ps = await StartPs();
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(ps.Address, new Grpc.Net.Client.GrpcChannelOptions { MaxReceiveMessageSize = 64 << 20, MaxSendMessageSize = 64 << 20 });
        var client = new ParameterService.ParameterServiceClient(channel);
        var values = new float[10_000_000];
        Array.Fill(values, 0.25f);
        var initialize = new PushRequest { WorkerId = "a", Initialize = true };
        new ParameterSet([new NamedParameter("layers.embedding.weight", [10_000, 1_000], values)]).WriteTo(initialize.Deltas);
        Assert.Equal(1, (await client.PushAsync(initialize)).Version);
        var pulled = await client.PullAsync(new PullRequest { WorkerId = "a" });
        Assert.Equal(10_000_000, pulled.Tensors[0].Values.Count);
        Assert.All(pulled.Tensors[0].Values.Take(1_000), v => Assert.Equal(0.25f, v));
    }

    private static IEnumerable<string> CheckpointFilesOf(string directory) =>
        Directory.GetDirectories(directory, ShardCheckpoints.Prefix + "*").Order(StringComparer.Ordinal);

    private static async Task<EngineHarness> StartPs(int maxStaleness = 16, string? checkpoints = null, string merge = "Sum")
    {
        var settings = EngineHarness.BaseSettings();
        settings["Inference:Sync:Merge"] = merge;
        if (checkpoints is not null)
        {
            settings["Inference:Checkpoints:Directory"] = checkpoints;
            settings["Inference:Checkpoints:IntervalMs"] = "200";
        }
        settings["Inference:Role"] = "Ps";
        settings["Inference:Sync:MaxStaleness"] = maxStaleness.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["Inference:Sync:MaxUpdateNorm"] = "1000";
        return await EngineHarness.StartAsync(settings);
    }

    [Fact]
    public async Task Embedding_rows_sum_per_key_come_back_once_changed_refuse_a_retry_and_survive_a_restart()
    {
        string directory = Path.Combine(Path.GetTempPath(), "inference-ps-" + Guid.NewGuid().ToString("N"));
        static EmbeddingRows Rows(string input, params (ulong Key, float A, float B)[] rows)
        {
            var block = new EmbeddingRows { Input = input, Dimension = 2 };
            foreach (var (key, a, b) in rows)
            {
                block.Keys.Add(key);
                block.Values.Add([a, b]);
            }
            return block;
        }
        static Dictionary<ulong, float[]> Held(PullResponse pulled, string input) =>
            pulled.Rows.Where(r => r.Input == input).SelectMany(r => r.Keys.Select((key, k) => (key, values: r.Values.Skip(k * 2).Take(2).ToArray()))).ToDictionary(r => r.key, r => r.values);
        try
        {
            long after;
            await using (var ps = await StartPs(checkpoints: directory))
            {
                var client = new ParameterService.ParameterServiceClient(ps.Channel);
                await client.PushAsync(Push("a", 0, 0, initialize: true, 1f, 1f));
                var first = Push("a", 1, 1, initialize: false, 0f, 0f);
                first.Rows.Add(Rows("item", (7, 0.5f, -0.5f), (9, 1f, 1f)));
                var answered = await client.PushAsync(first);
                var second = Push("b", 1, 1, initialize: false, 0f, 0f);
                second.Rows.Add(Rows("item", (7, 0.25f, 0.25f)));
                second.Rows.Add(Rows("user", (3, 2f, 2f)));
                await client.PushAsync(second);
                // A retry of a's push (its answer lost): not applied again.
                Assert.True((await client.PushAsync(first)).Duplicate);

                var all = await client.PullAsync(new PullRequest { WorkerId = "a", WithRows = true });
                Assert.Empty(all.Tensors);
                Assert.Equal([0.75f, -0.25f], Held(all, "item")[7]);
                Assert.Equal([1f, 1f], Held(all, "item")[9]);
                Assert.Equal([2f, 2f], Held(all, "user")[3]);
                // Only what changed after a version comes back.
                var since = await client.PullAsync(new PullRequest { WorkerId = "a", WithRows = true, RowsSince = answered.Version });
                Assert.Equal([7UL], Held(since, "item").Keys);
                Assert.Equal([3UL], Held(since, "user").Keys);
                after = all.Version;

                var refused = Push("a", 2, after, initialize: false, 0f, 0f);
                refused.Rows.Add(Rows("item", (7, float.NaN, 0f)));
                Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => client.PushAsync(refused).ResponseAsync)).StatusCode);
                var otherShape = Push("a", 3, after, initialize: false, 0f, 0f);
                otherShape.Rows.Add(new EmbeddingRows { Input = "item", Dimension = 1, Keys = { 7 }, Values = { 1f } });
                Assert.Equal(StatusCode.InvalidArgument, (await Assert.ThrowsAsync<RpcException>(() => client.PushAsync(otherShape).ResponseAsync)).StatusCode);
            }
            // The final checkpoint holds the rows: a restart serves them as they were.
            await using (var ps = await StartPs(checkpoints: directory))
            {
                var client = new ParameterService.ParameterServiceClient(ps.Channel);
                var all = await client.PullAsync(new PullRequest { WorkerId = "a", WithRows = true });
                Assert.Equal(after, all.Version);
                Assert.Equal([0.75f, -0.25f], Held(all, "item")[7]);
                Assert.Equal([2f, 2f], Held(all, "user")[3]);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static PushRequest Push(string worker, ulong sequence, long baseVersion, bool initialize, params float[] values)
    {
        var request = new PushRequest { WorkerId = worker, Sequence = sequence, BaseVersion = baseVersion, Initialize = initialize };
        Set(values).WriteTo(request.Deltas);
        return request;
    }
}

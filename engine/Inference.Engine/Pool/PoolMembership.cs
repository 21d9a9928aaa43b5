using Grpc.Core;
using Inference.Engine.Features;
using Inference.Engine.Kafka;
using Inference.Engine.Pipeline;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Engine.Sync;
using Inference.Proto.V1;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Pool;

/// <summary>Who owns an events partition, as the pool last said: the worker and where its Score endpoint is.</summary>
internal sealed record PartitionOwner(string WorkerId, string Endpoint);

/// <summary>
/// A worker's place in its pool (role Worker): every sync interval, and as soon as its consumer group
/// changes what it owns, it announces its Score endpoint and owned events partitions to the parameter
/// server (the first shard) and takes back the live members: the map Score routing forwards rows by.
/// </summary>
internal sealed class PoolMembership(PartitionOwnership ownership, DeviceExecutor executor, KafkaConnection kafka, EngineChannels channels, IServer server, IHostApplicationLifetime lifetime,
    IOptions<SyncOptions> sync, IOptions<ServingOptions> serving, IOptions<KafkaOptions> kafkaOptions, TimeProvider time, ILogger<PoolMembership> logger) : BackgroundService
{
    // Not a timeout: how often the loop looks for a change of the owned partitions to announce at once.
    private const int ChangePollMs = 50;
    private PartitionOwner?[] _owners = [];

    /// <summary>This worker's id in the pool.</summary>
    public string WorkerId { get; } = sync.Value.WorkerId ?? $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary>The events topic's partition count; 0 until known (routing is off until then).</summary>
    public int PartitionCount => Volatile.Read(ref _owners).Length;

    /// <summary>The owner of <paramref name="partition"/> when another live worker announced it; null when it is this worker's or unknown.</summary>
    public PartitionOwner? RemoteOwner(int partition)
    {
        if (ownership.Owns(partition))
        {
            return null;
        }
        var owners = Volatile.Read(ref _owners);
        return partition < owners.Length && owners[partition] is { } owner && owner.WorkerId != WorkerId ? owner : null;
    }

    /// <summary>Where this worker's ScoringService is reached: <c>Inference:Serving:AdvertisedAddress</c>, else the address it listens on.</summary>
    public string Endpoint { get; private set; } = "";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await AnnounceAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (Exception error) when (error is OperationCanceledException or RpcException { StatusCode: StatusCode.Cancelled } && stoppingToken.IsCancellationRequested)
        {
            // Stopping: the members' timeout takes this worker out of the map.
        }
    }

    private async Task AnnounceAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource();
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        {
            await started.Task.WaitAsync(stoppingToken);
        }
        Endpoint = serving.Value.AdvertisedAddress ?? Advertised(server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "");
        string topic = kafkaOptions.Value.EventsTopic;
        int partitions = 0;
        using var channel = channels.Open(sync.Value.ParameterServers[0]);
        var registry = new ParameterService.ParameterServiceClient(channel);
        long announced = -1;
        long next = 0;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (partitions == 0)
                {
                    partitions = kafka.PartitionCount(topic) ?? 0;
                }
                if (partitions > 0 && (ownership.Version != announced || Deadline.RemainingMs(time, next) == 0))
                {
                    long version = ownership.Version;
                    var request = new AnnounceRequest { WorkerId = WorkerId, Endpoint = Endpoint, Topic = topic, PartitionCount = partitions, MaxEventTimeMs = executor.AsOf(executor.Watermark) };
                    request.Partitions.Add(ownership.Owned);
                    var members = await registry.AnnounceAsync(request, channels.Headers, deadline: time.GetUtcNow().UtcDateTime.AddMilliseconds(sync.Value.AnnounceTimeoutMs), cancellationToken: stoppingToken);
                    Take(members, partitions);
                    // The pool's newest event time only moves forward, as one node's does: a member that leaves the map
                    // takes its announcement with it, not the time the pool had reached (its partitions' new owners
                    // hold their state as of that time, restored from its checkpoints without replaying its events).
                    executor.PoolEventTimeMs = Math.Max(executor.PoolEventTimeMs, members.MaxEventTimeMs);
                    announced = version;
                    next = Deadline.After(time, sync.Value.IntervalMs);
                }
            }
            catch (Exception error) when (error is RpcException or Confluent.Kafka.KafkaException && !stoppingToken.IsCancellationRequested)
            {
                // Routing goes on with the last map; the next interval tries again.
                ServingLog.AnnounceFailed(logger, error.Message);
                next = Deadline.After(time, sync.Value.IntervalMs);
            }
            await Task.Delay(TimeSpan.FromMilliseconds(ChangePollMs), time, stoppingToken).ConfigureAwait(false);
        }
    }

    private void Take(PoolMembers members, int partitions)
    {
        var owners = new PartitionOwner?[partitions];
        // Newest announcements come first: the first claim of a partition wins.
        foreach (var member in members.Members)
        {
            foreach (int partition in member.Partitions)
            {
                if (partition < partitions && owners[partition] is null)
                {
                    owners[partition] = new PartitionOwner(member.WorkerId, member.Endpoint);
                }
            }
        }
        Volatile.Write(ref _owners, owners);
    }

    /// <summary>A listening address others can dial: an unspecified host (0.0.0.0, [::]) is replaced by this machine's name.</summary>
    private static string Advertised(string address) =>
        address.Replace("://0.0.0.0:", $"://{Environment.MachineName}:", StringComparison.Ordinal)
            .Replace("://[::]:", $"://{Environment.MachineName}:", StringComparison.Ordinal);
}

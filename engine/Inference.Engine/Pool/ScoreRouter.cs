using System.Collections.Concurrent;
using Grpc.Core;
using Inference.Client;
using Inference.Engine.Security;
using Inference.Engine.Serving;
using Inference.Proto.V1;
using FeatureWatermark = Inference.Proto.V1.FeatureWatermark;

namespace Inference.Engine.Pool;

/// <summary>
/// Score and GetFeatures in a pool (role Worker): any worker takes any request. Each row's events partition is Kafka's
/// default partitioner of its entity (<see cref="KafkaPartitioner"/>); rows another live worker owns are
/// forwarded to it in one request per owner (marked so it scores them itself), in parallel with the rows
/// scored here, and the answers are put back in request order with each row's origin. Rows of a
/// partition no live worker announced are scored here, as the origin says.
/// </summary>
internal sealed class ScoreRouter(PoolMembership pool, PartitionOwnership ownership, EngineChannels channels, ServingMetrics metrics) : IScoreRouting
{
    /// <summary>The metadata a forwarded request carries: the receiver scores it itself, never forwards again.</summary>
    private readonly ConcurrentDictionary<string, ScoringService.ScoringServiceClient> _clients = new(StringComparer.Ordinal);

    /// <summary>What every forwarded request carries: the mark and this worker's credentials.</summary>
    private readonly Metadata _forwarded = [new Metadata.Entry(IScoreRouting.ForwardedHeader, "1"), .. channels.Headers];

    public PoolMembership Pool => pool;

    /// <summary>Each row's events partition; null until the partition count is known.</summary>
    public int[]? Partitions(ScoreRequest request) => Partitions(request.Rows.Count, r => request.Rows[r].Entity);

    /// <summary>Each entity's events partition; null until the partition count is known.</summary>
    public int[]? Partitions(GetFeaturesRequest request) => Partitions(request.Entities.Count, r => request.Entities[r]);

    private int[]? Partitions(int rows, Func<int, string> entity)
    {
        int count = pool.PartitionCount;
        if (count == 0)
        {
            return null;
        }
        var partitions = new int[rows];
        for (int r = 0; r < partitions.Length; r++)
        {
            partitions[r] = KafkaPartitioner.PartitionOf(entity(r), count);
        }
        return partitions;
    }

    /// <summary>The rows this worker holds, and per remote owner the rows it holds.</summary>
    private (List<int> Here, Dictionary<string, (PartitionOwner Owner, List<int> Rows)> Remote) Split(int[] partitions)
    {
        var remote = new Dictionary<string, (PartitionOwner Owner, List<int> Rows)>(StringComparer.Ordinal);
        var here = new List<int>();
        for (int r = 0; r < partitions.Length; r++)
        {
            if (pool.RemoteOwner(partitions[r]) is { } owner)
            {
                if (!remote.TryGetValue(owner.Endpoint, out var group))
                {
                    remote[owner.Endpoint] = group = (owner, []);
                }
                group.Rows.Add(r);
            }
            else
            {
                here.Add(r);
            }
        }
        return (here, remote);
    }

    /// <summary>
    /// Reads features across the pool: each entity from the worker that owns its partition, in request
    /// order; the watermark is this worker's (or, when it holds none of them, the first owner's).
    /// </summary>
    public async Task<GetFeaturesResponse> GetFeaturesAsync(GetFeaturesRequest request, int[] partitions, ServerCallContext context, Func<GetFeaturesRequest, Task<GetFeaturesResponse>> local)
    {
        var (here, remote) = Split(partitions);
        if (remote.Count == 0)
        {
            return await local(request).ConfigureAwait(false);
        }
        GetFeaturesRequest Subset(List<int> rows)
        {
            var subset = new GetFeaturesRequest();
            subset.Entities.Add(rows.Select(r => request.Entities[r]));
            return subset;
        }
        var parts = new List<(List<int> Rows, Task<GetFeaturesResponse> Answer)>();
        if (here.Count > 0)
        {
            parts.Add((here, local(Subset(here))));
        }
        foreach (var (_, (owner, rows)) in remote)
        {
            parts.Add((rows, CallOwnerAsync(owner, rows.Select(r => partitions[r]).Distinct(), "read them",
                client => client.GetFeaturesAsync(Subset(rows), _forwarded, deadline: Deadline(context), cancellationToken: context.CancellationToken).ResponseAsync)));
        }
        var answers = await Task.WhenAll(parts.Select(p => p.Answer)).ConfigureAwait(false);
        metrics.Forwarded(partitions.Length - here.Count);
        var merged = new GetFeaturesResponse { Watermark = answers[0].Watermark };
        merged.FeatureNames.Add(answers[0].FeatureNames);
        var entities = new EntityFeatures[partitions.Length];
        for (int part = 0; part < parts.Count; part++)
        {
            var rows = parts[part].Rows;
            for (int i = 0; i < rows.Count; i++)
            {
                entities[rows[i]] = answers[part].Entities[i];
            }
        }
        merged.Entities.Add(entities);
        return merged;
    }

    /// <summary>Sets each row's origin on a response scored here (rows in the order of <paramref name="partitions"/>).</summary>
    public void AddOrigins(ScoreResponse response, ReadOnlySpan<int> partitions, string topic)
    {
        for (int row = 0; row < partitions.Length; row++)
        {
            int partition = partitions[row];
            long offset = -1;
            foreach (var entry in response.Watermark?.Partitions ?? [])
            {
                if (entry.Partition == partition && entry.Topic == topic)
                {
                    offset = entry.LastAppliedOffset;
                    break;
                }
            }
            response.Origins.Add(new RowOrigin
            {
                Partition = partition,
                WorkerId = pool.WorkerId,
                LastAppliedOffset = offset,
                ModelVersion = row < response.RowVersions.Count ? response.RowVersions[row] : response.ModelVersion,
                CatchingUp = Gap(partition, offset) is not null,
            });
        }
    }

    /// <summary>Why rows of <paramref name="partition"/> read here are not from whole state (given the offset applied from it); null when they are.</summary>
    public string? Gap(int partition, long applied)
    {
        if (!ownership.Owns(partition))
        {
            return $"no live worker owns partition {partition} at the moment (a rebalance); read from what worker {pool.WorkerId} holds";
        }
        if (!ownership.CatchingUp(partition, applied, out long target))
        {
            return null;
        }
        return target == long.MaxValue
            ? $"partition {partition} just arrived at worker {pool.WorkerId}; its restore is starting"
            : $"partition {partition} is being restored and replayed on worker {pool.WorkerId} (applied up to offset {applied} of {target})";
    }

    /// <summary>With <see cref="ServingOptions.RequireCaughtUp"/>: refuses rows of partitions whose state is not whole here, naming them.</summary>
    public void RequireCaughtUp(IEnumerable<int> partitions, Features.FeatureWatermark applied, string topic)
    {
        var gaps = new List<string>();
        foreach (int partition in partitions.Distinct())
        {
            if (Gap(partition, applied.OffsetOf(topic, partition)) is { } gap)
            {
                gaps.Add(gap);
            }
        }
        if (gaps.Count > 0)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"Not caught up (Inference:Serving:RequireCaughtUp): {string.Join("; ", gaps)}. Retry shortly."));
        }
    }

    /// <summary>Scores <paramref name="request"/> across the pool: <paramref name="local"/> scores (and sets origins on) what this worker holds.</summary>
    public async Task<ScoreResponse> ScoreAsync(ScoreRequest request, int[] partitions, string topic, ServerCallContext context, Func<ScoreRequest, int[], Task<ScoreResponse>> local)
    {
        var (here, remote) = Split(partitions);
        if (remote.Count == 0)
        {
            return await local(request, partitions).ConfigureAwait(false);
        }
        var parts = new List<(List<int> Rows, Task<ScoreResponse> Answer)>();
        if (here.Count > 0)
        {
            parts.Add((here, local(Subset(request, here, partitions, topic), [.. here.Select(r => partitions[r])])));
        }
        foreach (var (_, (owner, rows)) in remote)
        {
            var subset = Subset(request, rows, partitions, topic);
            parts.Add((rows, CallOwnerAsync(owner, rows.Select(r => partitions[r]).Distinct(), "score them",
                client => client.ScoreAsync(subset, _forwarded, deadline: Deadline(context), cancellationToken: context.CancellationToken).ResponseAsync)));
        }
        var answers = await Task.WhenAll(parts.Select(p => p.Answer)).ConfigureAwait(false);
        metrics.Forwarded(partitions.Length - here.Count);
        return ScoreResponses.Merge(partitions.Length, [.. parts.Select((p, i) => ((IReadOnlyList<int>)p.Rows, answers[i]))]);
    }

    private static DateTime? Deadline(ServerCallContext context) => context.Deadline == DateTime.MaxValue ? null : context.Deadline;

    /// <summary>Calls the owner of some rows; its failure names the partitions and the owner, with the caller's status where it is the caller's to act on.</summary>
    private async Task<T> CallOwnerAsync<T>(PartitionOwner owner, IEnumerable<int> partitions, string what, Func<ScoringService.ScoringServiceClient, Task<T>> call)
    {
        var client = _clients.GetOrAdd(owner.Endpoint, endpoint => new ScoringService.ScoringServiceClient(channels.Open(endpoint)));
        try
        {
            return await call(client).ConfigureAwait(false);
        }
        catch (RpcException error)
        {
            var code = error.StatusCode is StatusCode.DeadlineExceeded or StatusCode.Cancelled or StatusCode.ResourceExhausted or StatusCode.InvalidArgument
                ? error.StatusCode : StatusCode.Unavailable;
            throw new RpcException(new Status(code,
                $"Rows of partition(s) {string.Join(", ", partitions.Order())} belong to worker {owner.WorkerId} at {owner.Endpoint}, which did not {what}: {error.Status.Detail}"));
        }
    }

    /// <summary>The rows <paramref name="rows"/> of a request, with the part of its minimum watermark that concerns their partitions.</summary>
    private static ScoreRequest Subset(ScoreRequest request, List<int> rows, int[] partitions, string topic)
    {
        var subset = new ScoreRequest();
        foreach (int r in rows)
        {
            subset.Rows.Add(request.Rows[r]);
        }
        if (request.MinWatermark is { Partitions.Count: > 0 } minimum)
        {
            var wanted = rows.Select(r => partitions[r]).ToHashSet();
            subset.MinWatermark = new FeatureWatermark();
            subset.MinWatermark.Partitions.Add(minimum.Partitions.Where(p => p.Topic != topic || wanted.Contains(p.Partition)));
        }
        return subset;
    }
}

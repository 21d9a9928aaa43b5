using Grpc.Core;
using Grpc.Net.Client;
using Inference.Proto.V1;

namespace Inference.Client;

/// <summary>
/// A Score client for a pool of workers that sends each row straight to the worker owning its entity
/// (no hop through another worker): it reads the pool's members from the parameter server (refreshed
/// every <c>refresh</c>), partitions rows with Kafka's default partitioner, calls each owner with its rows
/// in parallel and answers in request order. Rows of a partition no member announced go to any member,
/// which routes them itself. Any worker also accepts any request; this only saves the forwarding hop.
/// </summary>
public sealed class PoolScoringClient : IDisposable
{
    private readonly ParameterService.ParameterServiceClient _registry;
    private readonly Func<string, GrpcChannel> _connect;
    private readonly Metadata? _headers;
    private readonly TimeSpan _refresh;
    private readonly TimeSpan _membersTimeout;
    private readonly TimeProvider _time;
    private readonly Dictionary<string, (GrpcChannel Channel, ScoringService.ScoringServiceClient Client)> _workers = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly GrpcChannel _registryChannel;
    private (PoolMembers Members, DateTimeOffset At)? _members;

    /// <param name="parameterServer">The pool's first parameter-server shard, e.g. "http://pool-ps-0.pool-ps:50052".</param>
    /// <param name="headers">Sent with every call (e.g. "authorization: Bearer …" where the pool requires a token).</param>
    /// <param name="connect">Opens a channel to an address (TLS settings, handlers); default <see cref="GrpcChannel.ForAddress(string)"/>.</param>
    /// <param name="refresh">How long the members read from the parameter server are used before reading them again (1 s).</param>
    /// <param name="membersTimeout">The deadline of the call that reads the members (5 s).</param>
    /// <param name="time">The clock of the refresh and the deadline (the system clock).</param>
    public PoolScoringClient(string parameterServer, Metadata? headers = null, Func<string, GrpcChannel>? connect = null, TimeSpan? refresh = null, TimeSpan? membersTimeout = null, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _membersTimeout = membersTimeout ?? TimeSpan.FromSeconds(5);
        _connect = connect ?? (address => GrpcChannel.ForAddress(address));
        _registryChannel = _connect(parameterServer);
        _registry = new ParameterService.ParameterServiceClient(_registryChannel);
        _headers = headers;
        _refresh = refresh ?? TimeSpan.FromSeconds(1);
    }

    public async Task<ScoreResponse> ScoreAsync(ScoreRequest request, DateTime? deadline = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var members = await MembersAsync(cancellationToken).ConfigureAwait(false);
        if (members.Members.Count == 0 || members.PartitionCount == 0)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "The pool has no live workers (none announced itself to the parameter server)."));
        }
        var owners = new string?[members.PartitionCount];
        foreach (var member in members.Members)
        {
            foreach (int partition in member.Partitions)
            {
                owners[partition] ??= member.Endpoint;
            }
        }
        var groups = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        for (int r = 0; r < request.Rows.Count; r++)
        {
            string endpoint = owners[KafkaPartitioner.PartitionOf(request.Rows[r].Entity, members.PartitionCount)] ?? members.Members[0].Endpoint;
            if (!groups.TryGetValue(endpoint, out var rows))
            {
                groups[endpoint] = rows = [];
            }
            rows.Add(r);
        }
        var calls = groups.Select(group =>
        {
            var part = new ScoreRequest { MinWatermark = request.MinWatermark };
            foreach (int r in group.Value)
            {
                part.Rows.Add(request.Rows[r]);
            }
            return (Rows: (IReadOnlyList<int>)group.Value, Answer: Worker(group.Key).ScoreAsync(part, _headers, deadline, cancellationToken).ResponseAsync);
        }).ToList();
        var answers = await Task.WhenAll(calls.Select(c => c.Answer)).ConfigureAwait(false);
        return ScoreResponses.Merge(request.Rows.Count, [.. calls.Select((c, i) => (c.Rows, answers[i]))]);
    }

    private async Task<PoolMembers> MembersAsync(CancellationToken cancellationToken)
    {
        if (_members is { } cached && _time.GetUtcNow() - cached.At < _refresh)
        {
            return cached.Members;
        }
        var members = await _registry.MembersAsync(new MembersRequest(), _headers, (_time.GetUtcNow() + _membersTimeout).UtcDateTime, cancellationToken).ResponseAsync.ConfigureAwait(false);
        _members = (members, _time.GetUtcNow());
        return members;
    }

    private ScoringService.ScoringServiceClient Worker(string endpoint)
    {
        lock (_gate)
        {
            if (!_workers.TryGetValue(endpoint, out var worker))
            {
                var channel = _connect(endpoint);
                _workers[endpoint] = worker = (channel, new ScoringService.ScoringServiceClient(channel));
            }
            return worker.Client;
        }
    }

    public void Dispose()
    {
        _registryChannel.Dispose();
        foreach (var (channel, _) in _workers.Values)
        {
            channel.Dispose();
        }
    }
}

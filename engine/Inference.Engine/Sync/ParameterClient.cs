using Grpc.Core;
using Grpc.Net.Client;
using Inference.Engine.Security;
using Inference.Models.Parameters;
using Inference.Models.Training;
using Inference.Proto.V1;

namespace Inference.Engine.Sync;

/// <summary>How a worker's trainer talks to its parameter server: over gRPC, or in-process for role All.</summary>
internal interface IParameterClient
{
    (long Version, ParameterSet? Parameters, InputMoments? Moments) Pull();

    /// <summary>
    /// Pushes a delta with this worker's <paramref name="sequence"/> (the same one when retrying a push
    /// whose answer was lost) and its running input statistics.
    /// </summary>
    /// <remarks>A model over ids adds <paramref name="rows"/>: the changes of the embedding rows touched since its last push.</remarks>
    PushResult Push(ParameterSet delta, long baseVersion, ulong sequence, InputMoments? moments, IReadOnlyList<RowBlock>? rows = null);

    long Initialize(ParameterSet parameters, IReadOnlyList<RowBlock>? rows = null);

    /// <summary>
    /// A model over ids: the embedding rows changed since this client's last call (every row the first time, and
    /// after a server restarted), as offsets from their initial values.
    /// </summary>
    IReadOnlyList<RowBlock> PullRows();
}

/// <summary>Where a client's row pulls resume: after the version of its last one, from the start once the server's version went back (it restarted).</summary>
internal sealed class RowCursor
{
    private long _since;

    public long Since => _since;

    public IReadOnlyList<RowBlock> Take(long version, IReadOnlyList<RowBlock> rows, Func<IReadOnlyList<RowBlock>> again)
    {
        if (version < _since)
        {
            _since = 0;
            rows = again();
        }
        _since = version;
        return rows;
    }
}

/// <summary>The shard in this same process (role All); the same semantics as the gRPC service.</summary>
internal sealed class LocalParameterClient(ParameterShard shard) : IParameterClient
{
    private const string Worker = "local";

    public (long Version, ParameterSet? Parameters, InputMoments? Moments) Pull()
    {
        var (version, parameters) = shard.Current;
        return (version, parameters, shard.Moments);
    }

    public PushResult Push(ParameterSet delta, long baseVersion, ulong sequence, InputMoments? moments, IReadOnlyList<RowBlock>? rows = null) =>
        shard.Apply(Worker, sequence, baseVersion, delta, moments, rows);

    public long Initialize(ParameterSet parameters, IReadOnlyList<RowBlock>? rows = null) => shard.Initialize(parameters, rows);

    public IReadOnlyList<RowBlock> PullRows() => [];
}

/// <summary>A remote parameter server over gRPC (role Worker).</summary>
internal sealed class GrpcParameterClient : IParameterClient, IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly ParameterService.ParameterServiceClient _client;
    private readonly string _workerId;
    private readonly Metadata _headers;
    private readonly TimeProvider _time;
    private readonly int _rpcTimeoutMs;
    private readonly RowCursor _rows = new();

    /// <summary>Calls with a deadline of <paramref name="rpcTimeoutMs"/> (<see cref="SyncOptions.RpcTimeoutMs"/>) on <paramref name="time"/>'s clock.</summary>
    public GrpcParameterClient(string address, string workerId, EngineChannels channels, TimeProvider time, int rpcTimeoutMs)
    {
        _time = time;
        _rpcTimeoutMs = rpcTimeoutMs;
        _channel = channels.Open(address);
        _client = new ParameterService.ParameterServiceClient(_channel);
        _workerId = workerId;
        _headers = channels.Headers;
    }

    public (long Version, ParameterSet? Parameters, InputMoments? Moments) Pull()
    {
        var response = _client.Pull(new PullRequest { WorkerId = _workerId }, _headers, deadline: Deadline());
        return (response.Version, response.Version == 0 ? null : response.Tensors.ToParameterSet(), response.Moments.ToMoments());
    }

    public PushResult Push(ParameterSet delta, long baseVersion, ulong sequence, InputMoments? moments, IReadOnlyList<RowBlock>? rows = null)
    {
        var request = new PushRequest { WorkerId = _workerId, BaseVersion = baseVersion, Sequence = sequence, Moments = moments?.ToMessage() };
        delta.WriteTo(request.Deltas);
        rows?.WriteTo(request.Rows);
        try
        {
            var response = _client.Push(request, _headers, deadline: Deadline());
            return new PushResult(response.Version, response.Duplicate);
        }
        catch (RpcException error) when (error.StatusCode == StatusCode.FailedPrecondition && error.Status.Detail.Contains("pull first", StringComparison.Ordinal))
        {
            throw new StalePushException(error.Status.Detail);
        }
    }

    public long Initialize(ParameterSet parameters, IReadOnlyList<RowBlock>? rows = null)
    {
        var request = new PushRequest { WorkerId = _workerId, Initialize = true };
        parameters.WriteTo(request.Deltas);
        rows?.WriteTo(request.Rows);
        return _client.Push(request, _headers, deadline: Deadline()).Version;
    }

    public IReadOnlyList<RowBlock> PullRows()
    {
        PullResponse Since(long since) => _client.Pull(new PullRequest { WorkerId = _workerId, WithRows = true, RowsSince = since }, _headers, deadline: Deadline());
        var response = Since(_rows.Since);
        return _rows.Take(response.Version, response.Rows.ToRows(), () => Since(0).Rows.ToRows());
    }

    public void Dispose() => _channel.Dispose();

    private DateTime Deadline() => _time.GetUtcNow().UtcDateTime.AddMilliseconds(_rpcTimeoutMs);
}

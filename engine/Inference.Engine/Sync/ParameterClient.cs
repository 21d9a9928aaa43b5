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
    PushResult Push(ParameterSet delta, long baseVersion, ulong sequence, InputMoments? moments);

    long Initialize(ParameterSet parameters);
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

    public PushResult Push(ParameterSet delta, long baseVersion, ulong sequence, InputMoments? moments) => shard.Apply(Worker, sequence, baseVersion, delta, moments);

    public long Initialize(ParameterSet parameters) => shard.Initialize(parameters);
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

    public PushResult Push(ParameterSet delta, long baseVersion, ulong sequence, InputMoments? moments)
    {
        var request = new PushRequest { WorkerId = _workerId, BaseVersion = baseVersion, Sequence = sequence, Moments = moments?.ToMessage() };
        delta.WriteTo(request.Deltas);
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

    public long Initialize(ParameterSet parameters)
    {
        var request = new PushRequest { WorkerId = _workerId, Initialize = true };
        parameters.WriteTo(request.Deltas);
        return _client.Push(request, _headers, deadline: Deadline()).Version;
    }

    public void Dispose() => _channel.Dispose();

    private DateTime Deadline() => _time.GetUtcNow().UtcDateTime.AddMilliseconds(_rpcTimeoutMs);
}

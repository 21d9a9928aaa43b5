using Grpc.Net.Client;
using Inference.Models.Parameters;
using Inference.Proto.V1;

namespace Inference.Engine.Sync;

/// <summary>How a worker's trainer talks to its parameter server: over gRPC, or in-process for role All.</summary>
internal interface IParameterClient
{
    (long Version, ParameterSet? Parameters) Pull();

    long Push(ParameterSet delta, long baseVersion, bool initialize);
}

/// <summary>The shard in this same process (role All); the same semantics as the gRPC service.</summary>
internal sealed class LocalParameterClient(ParameterShard shard) : IParameterClient
{
    public (long Version, ParameterSet? Parameters) Pull() => shard.Current;

    public long Push(ParameterSet delta, long baseVersion, bool initialize) =>
        initialize ? shard.Initialize(delta) : shard.Apply(delta);
}

/// <summary>A remote parameter server over gRPC (role Worker).</summary>
internal sealed class GrpcParameterClient : IParameterClient, IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly ParameterService.ParameterServiceClient _client;
    private readonly string _workerId;

    public GrpcParameterClient(string address, string workerId)
    {
        _channel = GrpcChannel.ForAddress(address);
        _client = new ParameterService.ParameterServiceClient(_channel);
        _workerId = workerId;
    }

    public (long Version, ParameterSet? Parameters) Pull()
    {
        var response = _client.Pull(new PullRequest { WorkerId = _workerId }, deadline: DateTime.UtcNow.AddSeconds(10));
        return (response.Version, response.Version == 0 ? null : response.Tensors.ToParameterSet());
    }

    public long Push(ParameterSet delta, long baseVersion, bool initialize)
    {
        var request = new PushRequest { WorkerId = _workerId, BaseVersion = baseVersion, Initialize = initialize };
        delta.WriteTo(request.Deltas);
        return _client.Push(request, deadline: DateTime.UtcNow.AddSeconds(10)).Version;
    }

    public void Dispose() => _channel.Dispose();
}

using Grpc.Core;
using Inference.Proto.V1;

namespace Inference.Engine.Sync;

/// <summary>The parameter server's gRPC face over one <see cref="ParameterShard"/>.</summary>
internal sealed class ParameterGrpcService(ParameterShard shard) : ParameterService.ParameterServiceBase
{
    public override Task<PushResponse> Push(PushRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.WorkerId))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "worker_id is empty."));
        }
        try
        {
            var parameters = request.Deltas.ToParameterSet();
            long version = request.Initialize ? shard.Initialize(parameters) : shard.Apply(parameters);
            return Task.FromResult(new PushResponse { Version = version });
        }
        catch (ArgumentException error)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, error.Message));
        }
        catch (InvalidOperationException error)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, error.Message));
        }
    }

    public override Task<PullResponse> Pull(PullRequest request, ServerCallContext context)
    {
        var (version, parameters) = shard.Current;
        var response = new PullResponse { Version = version };
        parameters?.WriteTo(response.Tensors);
        return Task.FromResult(response);
    }
}

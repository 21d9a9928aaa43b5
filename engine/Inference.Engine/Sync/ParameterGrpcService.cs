using Grpc.Core;
using Inference.Proto.V1;

namespace Inference.Engine.Sync;

/// <summary>The parameter server's gRPC face over one <see cref="ParameterShard"/>.</summary>
internal sealed class ParameterGrpcService(ParameterShard shard, SyncMetrics metrics, IPoolRegistry pool) : ParameterService.ParameterServiceBase
{
    public override Task<PoolMembers> Announce(AnnounceRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.WorkerId) || !Uri.TryCreate(request.Endpoint, UriKind.Absolute, out _) || request.PartitionCount < 0
            || request.Partitions.Any(p => p < 0 || p >= request.PartitionCount))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "An announcement needs a worker_id, an absolute endpoint, and partitions within partition_count."));
        }
        return Task.FromResult(pool.Announce(request));
    }

    public override Task<PoolMembers> Members(MembersRequest request, ServerCallContext context) => Task.FromResult(pool.Members());

    public override Task<PushResponse> Push(PushRequest request, ServerCallContext context)
    {
        if (string.IsNullOrEmpty(request.WorkerId))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "worker_id is empty."));
        }
        try
        {
            var parameters = request.Deltas.ToParameterSet();
            if (request.Initialize)
            {
                return Task.FromResult(new PushResponse { Version = shard.Initialize(parameters, request.Rows.ToRows()) });
            }
            var result = shard.Apply(request.WorkerId, request.Sequence, request.BaseVersion, parameters, request.Moments.ToMoments(), request.Rows.ToRows());
            if (result.Duplicate)
            {
                metrics.Duplicate();
            }
            return Task.FromResult(new PushResponse { Version = result.Version, Duplicate = result.Duplicate });
        }
        catch (InvalidParametersException error)
        {
            metrics.Refused(error.Reason);
            throw new RpcException(new Status(StatusCode.InvalidArgument, error.Message));
        }
        catch (ArgumentException error)
        {
            // A tensor the shard does not hold, or of another shape (ParameterSet.Plus).
            metrics.Refused("shape");
            throw new RpcException(new Status(StatusCode.InvalidArgument, error.Message));
        }
        catch (StalePushException error)
        {
            metrics.Refused("stale");
            throw new RpcException(new Status(StatusCode.FailedPrecondition, error.Message));
        }
        catch (InvalidOperationException error)
        {
            throw new RpcException(new Status(StatusCode.FailedPrecondition, error.Message));
        }
    }

    public override Task<PullResponse> Pull(PullRequest request, ServerCallContext context)
    {
        if (request.WithRows)
        {
            var (at, rows) = shard.RowsSince(request.RowsSince);
            var changed = new PullResponse { Version = at };
            rows.WriteTo(changed.Rows);
            return Task.FromResult(changed);
        }
        var (version, parameters) = shard.Current;
        var response = new PullResponse { Version = version, Moments = shard.Moments?.ToMessage() };
        parameters?.WriteTo(response.Tensors);
        return Task.FromResult(response);
    }
}

using Grpc.Core;
using Inference.Bench.V1;

namespace Inference.Bench.Pipeline;

/// <summary>A gRPC method that does nothing, hosted on the engine's own server as the latency floor.</summary>
internal sealed class NoopGrpcService : NoopService.NoopServiceBase
{
    private static readonly Task<NoopReply> Reply = Task.FromResult(new NoopReply { Score = 0.5f });

    public override Task<NoopReply> Noop(NoopRequest request, ServerCallContext context) => Reply;
}

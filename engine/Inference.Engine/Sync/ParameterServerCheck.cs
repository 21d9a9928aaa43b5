using Grpc.Core;
using Inference.Engine.Pipeline;
using Inference.Engine.Security;
using Inference.Proto.V1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Sync;

/// <summary>
/// A worker's first step (role Worker): every parameter server shard it names must answer within
/// <see cref="SyncOptions.StartTimeoutMs"/>, and take its credentials. One that does not fails the start as
/// bad configuration naming the key (exit 3), rather than a worker that runs on and never joins its pool.
/// A shard lost later is retried every interval, as before.
/// </summary>
internal sealed class ParameterServerCheck(EngineChannels channels, IOptions<SyncOptions> options, TimeProvider time) : IHostedService
{
    // Not a timeout: how long a worker waits before it asks a shard that did not answer again.
    private const int RetryMs = 250;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var sync = options.Value;
        long deadline = Deadline.After(time, sync.StartTimeoutMs);
        foreach (string address in sync.ParameterServers)
        {
            using var channel = channels.Open(address);
            var client = new ParameterService.ParameterServiceClient(channel);
            while (true)
            {
                try
                {
                    await client.MembersAsync(new MembersRequest(), channels.Headers, deadline: time.GetUtcNow().UtcDateTime.AddMilliseconds(Math.Clamp(Deadline.RemainingMs(time, deadline), 1, sync.StartProbeTimeoutMs)),
                        cancellationToken: cancellationToken).ConfigureAwait(false);
                    break;
                }
                catch (RpcException error) when (error.StatusCode is StatusCode.Unauthenticated or StatusCode.PermissionDenied)
                {
                    throw Fail("Inference:Security:Client:Token", $"the parameter server at {address} refused this worker's credentials ({error.StatusCode}: {error.Status.Detail}).");
                }
                catch (RpcException error) when (!cancellationToken.IsCancellationRequested)
                {
                    if (Deadline.RemainingMs(time, deadline) == 0)
                    {
                        throw Fail("Inference:Sync:ParameterServer",
                            $"no parameter server answered at {address} within {sync.StartTimeoutMs} ms (Inference:Sync:StartTimeoutMs): {error.StatusCode}: {error.Status.Detail}");
                    }
                    await Task.Delay(TimeSpan.FromMilliseconds(RetryMs), time, cancellationToken).ConfigureAwait(false);
                }
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static OptionsValidationException Fail(string key, string problem) => new(SyncOptions.Section, typeof(SyncOptions), [$"{key}: {problem}"]);
}

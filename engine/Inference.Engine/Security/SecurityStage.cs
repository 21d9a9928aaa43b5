using Inference.Engine.Pipeline;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Inference.Engine.Security;

/// <summary>Registers TLS and authentication: options, the call authorizer (a gRPC interceptor) and the channels the engine calls others with.</summary>
internal static class SecurityStage
{
    public static void Add(IServiceCollection services, IConfiguration configuration)
    {
        services.AddStageOptions(configuration, SecurityOptions.Section, new SecurityOptionsValidator());
        services.AddSingleton<CallAuthorizer>();
    }
}

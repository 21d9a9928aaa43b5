using System.Net;
using System.Security.Cryptography;
using System.Text;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Security;

/// <summary>What a call to a guarded method brought: a token, a verified client certificate, where it came from.</summary>
public readonly record struct PresentedCredentials(string? Authorization, bool HasClientCertificate, IPAddress? Peer);

/// <summary>
/// Guards the gRPC methods that change or reveal the model: the parameter service, gRPC ingestion and
/// <c>GetModel</c> always, <c>Score</c> when <see cref="SecurityOptions.ScoreRequiresToken"/>. A call passes
/// with a configured bearer token or a client certificate that Kestrel verified; with no credentials
/// configured at all, only from loopback. Otherwise it ends with <c>UNAUTHENTICATED</c> and says what is
/// missing. Health and reflection stay open.
/// </summary>
public sealed class CallAuthorizer : Interceptor
{
    private readonly SecurityOptions _options;
    private readonly byte[][] _tokens;

    public CallAuthorizer(IOptions<SecurityOptions> options)
    {
        _options = options.Value;
        // Compared as hashes in fixed time: neither a token's length nor its prefix leaks through timing.
        _tokens = [.. _options.Tokens.Select(t => SHA256.HashData(Encoding.UTF8.GetBytes(t)))];
    }

    /// <summary>Whether <paramref name="method"/> (e.g. "/inference.v1.ParameterService/Push") needs credentials.</summary>
    public bool Guards(string method) =>
        method.StartsWith("/inference.v1.ParameterService/", StringComparison.Ordinal)
        || method.StartsWith("/inference.v1.IngestService/", StringComparison.Ordinal)
        || method == "/inference.v1.ScoringService/GetModel"
        || (_options.ScoreRequiresToken && method.StartsWith("/inference.v1.ScoringService/", StringComparison.Ordinal));

    /// <summary>Null when a call with <paramref name="credentials"/> may go on; otherwise why not.</summary>
    public string? Refusal(PresentedCredentials credentials)
    {
        if (credentials.HasClientCertificate)
        {
            return null;
        }
        const string Prefix = "Bearer ";
        if (_tokens.Length > 0 && credentials.Authorization is { } header && header.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
        {
            byte[] presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[Prefix.Length..].Trim()));
            bool known = false;
            foreach (byte[] token in _tokens)
            {
                known |= CryptographicOperations.FixedTimeEquals(presented, token);
            }
            return known ? null : "The bearer token is not one of Inference:Security:Tokens.";
        }
        if (!_options.HasCredentials)
        {
            return credentials.Peer is { } peer && IPAddress.IsLoopback(peer) ? null
                : "Calls from beyond loopback need credentials: configure Inference:Security:Tokens or client certificates (Inference:Security:Tls:ClientCertificates).";
        }
        return "This method needs a bearer token (metadata 'authorization: Bearer TOKEN') or a client certificate.";
    }

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authorize(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Authorize(ServerCallContext context)
    {
        if (!Guards(context.Method))
        {
            return;
        }
        var connection = context.GetHttpContext().Connection;
        var credentials = new PresentedCredentials(context.RequestHeaders.GetValue("authorization"), connection.ClientCertificate is not null, connection.RemoteIpAddress);
        if (Refusal(credentials) is { } refusal)
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, refusal));
        }
    }
}

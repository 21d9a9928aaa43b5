using System.Net;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Security;

/// <summary>What a call brought: a token, a verified client certificate, where it came from.</summary>
internal readonly record struct PresentedCredentials(string? Authorization, bool HasClientCertificate, IPAddress? Peer);

/// <summary>Why a call may not go on: unauthenticated (no or an unknown credential) or denied (a credential without the scope).</summary>
internal readonly record struct Refusal(bool Denied, string Message);

/// <summary>
/// Decides per call whether its credentials grant the scope its method needs (<see cref="ScopeNames"/>):
/// a configured bearer token (compared in fixed time) or a client certificate Kestrel verified against
/// the configured authority; with no credentials configured at all, only calls from loopback. The
/// <see cref="Middleware"/> applies it to every request before its body is read, so a refused call costs
/// no more than its headers.
/// </summary>
internal sealed class CallAuthorizer
{
    private readonly SecurityOptions _options;
    private readonly (byte[] Hash, Scopes Scopes)[] _tokens;
    private readonly Scopes _certificateScopes;

    public CallAuthorizer(IOptions<SecurityOptions> options)
    {
        _options = options.Value;
        // Compared as hashes in fixed time: neither a token's length nor its prefix leaks through timing.
        _tokens =
        [
            .. _options.Tokens.Select(t => (Hash(t), Scopes.All)),
            .. _options.ScopedTokens.Select(t => (Hash(t.Token ?? ""), ScopeNames.Parse(t.Scopes) ?? Scopes.None)),
        ];
        _certificateScopes = ScopeNames.Parse(_options.Tls.ClientCertificateScopes) ?? Scopes.None;
    }

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    /// <summary>The scope a gRPC method needs here (None: open).</summary>
    public Scopes Required(string grpcMethod)
    {
        var scope = ScopeNames.OfGrpc(grpcMethod);
        return scope == Scopes.Score && _options.AnonymousScore ? Scopes.None : scope;
    }

    /// <summary>Null when a call with <paramref name="credentials"/> may use a method that needs <paramref name="required"/>; otherwise why not.</summary>
    public Refusal? Check(PresentedCredentials credentials, Scopes required)
    {
        if (required == Scopes.None)
        {
            return null;
        }
        if (!_options.HasCredentials)
        {
            return credentials.Peer is { } peer && IPAddress.IsLoopback(peer) ? null
                : new Refusal(false, "Calls from beyond loopback need credentials: configure Inference:Security:Tokens (or ScopedTokens) or client certificates (Inference:Security:Tls:ClientCertificates).");
        }
        var granted = Scopes.None;
        bool presented = false;
        if (credentials.HasClientCertificate)
        {
            presented = true;
            granted |= _certificateScopes;
        }
        const string Prefix = "Bearer ";
        if (credentials.Authorization is { } header && header.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
        {
            presented = true;
            byte[] hash = Hash(header[Prefix.Length..].Trim());
            var known = Scopes.None;
            bool found = false;
            foreach (var (token, scopes) in _tokens)
            {
                bool same = CryptographicOperations.FixedTimeEquals(hash, token);
                found |= same;
                known |= same ? scopes : Scopes.None;
            }
            if (!found && !credentials.HasClientCertificate)
            {
                return new Refusal(false, "The bearer token is not one of Inference:Security:Tokens or ScopedTokens.");
            }
            granted |= known;
        }
        if (!presented)
        {
            return new Refusal(false, $"This method needs a bearer token (header 'authorization: Bearer TOKEN') with scope '{ScopeNames.Describe(required)}', or a client certificate.");
        }
        return (granted & required) == required ? null
            : new Refusal(true, $"The credentials do not grant scope '{ScopeNames.Describe(required)}' (they grant: {(granted == Scopes.None ? "none" : ScopeNames.Describe(granted))}).");
    }

    /// <summary>
    /// The engine's first middleware: a gRPC call is checked against its method's scope and refused with
    /// UNAUTHENTICATED or PERMISSION_DENIED (a trailers-only response, before its message is read); an HTTP
    /// request to the HTTP port against its path's, refused with 401 or 403. On the HTTP port a token may
    /// also come as <c>?access_token=</c> (a browser's dashboard, an EventSource).
    /// </summary>
    public Task Middleware(HttpContext context, RequestDelegate next)
    {
        var request = context.Request;
        bool grpc = request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true;
        var required = grpc ? Required(request.Path.Value ?? "") : ScopeNames.OfHttp(request.Path.Value ?? "", _options.MetricsOpen);
        if (required == Scopes.None)
        {
            return next(context);
        }
        string? authorization = request.Headers.Authorization.FirstOrDefault();
        if (!grpc && authorization is null && request.Query["access_token"].FirstOrDefault() is { Length: > 0 } query)
        {
            authorization = "Bearer " + query;
        }
        var connection = context.Connection;
        if (Check(new PresentedCredentials(authorization, connection.ClientCertificate is not null, connection.RemoteIpAddress), required) is not { } refusal)
        {
            return next(context);
        }
        var response = context.Response;
        if (grpc)
        {
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/grpc";
            response.Headers["grpc-status"] = (refusal.Denied ? 7 : 16).ToString(System.Globalization.CultureInfo.InvariantCulture);
            response.Headers["grpc-message"] = Uri.EscapeDataString(refusal.Message);
            return Task.CompletedTask;
        }
        response.StatusCode = refusal.Denied ? StatusCodes.Status403Forbidden : StatusCodes.Status401Unauthorized;
        if (!refusal.Denied)
        {
            response.Headers.WWWAuthenticate = "Bearer";
        }
        response.ContentType = "text/plain; charset=utf-8";
        return response.WriteAsync(refusal.Message + "\n");
    }
}

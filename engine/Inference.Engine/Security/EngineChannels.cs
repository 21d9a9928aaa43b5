using System.Security.Cryptography.X509Certificates;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Options;

namespace Inference.Engine.Security;

/// <summary>
/// Channels for the engine's own calls to other engines (a worker to its parameter server, a worker to
/// another worker), with <c>Inference:Security:Client</c>: the servers' authority for https addresses, a
/// client certificate, and the bearer token each call carries.
/// </summary>
internal sealed class EngineChannels(IOptions<SecurityOptions> options, int maxMessageBytes)
{
    private readonly ClientSecurityOptions _client = options.Value.Client;

    /// <summary>The headers every call carries (the bearer token when one is configured).</summary>
    public Metadata Headers { get; } = string.IsNullOrEmpty(options.Value.Client.Token) ? [] : new Metadata { { "authorization", "Bearer " + options.Value.Client.Token } };

    /// <summary>A channel to <paramref name="address"/> ("http://host:port" in plain text, "https://…" over TLS).</summary>
    public GrpcChannel Open(string address)
    {
        var handler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true };
        if (address.StartsWith("https:", StringComparison.OrdinalIgnoreCase))
        {
            var authorities = string.IsNullOrWhiteSpace(_client.Ca) ? null : Certificates.LoadAuthorities(_client.Ca);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) => Certificates.Verify(certificate, errors, authorities);
            if (!string.IsNullOrWhiteSpace(_client.Certificate))
            {
                handler.SslOptions.ClientCertificates = new X509CertificateCollection { Certificates.Load(_client.Certificate, _client.Key, _client.Password) };
            }
        }
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions { HttpHandler = handler, MaxReceiveMessageSize = maxMessageBytes, MaxSendMessageSize = maxMessageBytes });
    }
}

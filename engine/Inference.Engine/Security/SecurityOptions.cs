namespace Inference.Engine.Security;

/// <summary>Whether the gRPC endpoint asks callers for a certificate (mutual TLS).</summary>
public enum ClientCertificates
{
    /// <summary>No client certificates.</summary>
    None,

    /// <summary>A client may present one; a presented one must verify, and then counts as a credential.</summary>
    Allow,

    /// <summary>Every connection must present one that verifies.</summary>
    Require,
}

/// <summary>
/// TLS and authentication of the engine's gRPC endpoint, its HTTP port and its own calls to other
/// engines, section <c>Inference:Security</c>. Every method needs a scope (<see cref="Scopes"/>):
/// <c>Score</c> score, <c>GetFeatures</c> features, gRPC ingestion ingest, the parameter service sync,
/// <c>GetModel</c> and the HTTP port's data (dashboard stream, alerts stream, <c>/metrics</c>) admin;
/// the health service, reflection, <c>/healthz</c>, <c>/readyz</c> and the dashboard's page are open. A
/// call brings a bearer token from <see cref="Tokens"/> (every scope) or <see cref="ScopedTokens"/>, or a
/// client certificate from <see cref="TlsOptions.ClientCa"/> (<see cref="TlsOptions.ClientCertificateScopes"/>).
/// With neither tokens nor client certificates configured every guarded method takes calls from
/// loopback only (nothing is open to the network by default).
/// </summary>
public sealed class SecurityOptions
{
    public const string Section = "Inference:Security";

    public TlsOptions Tls { get; set; } = new();

    /// <summary>Bearer tokens with every scope (<c>authorization: Bearer TOKEN</c>); each at least 16 characters. Several at once allow rotation.</summary>
    public List<string> Tokens { get; set; } = [];

    /// <summary>Bearer tokens with only some scopes, e.g. a scoring client's token with <c>score,features</c>.</summary>
    public List<ScopedToken> ScopedTokens { get; set; } = [];

    /// <summary>Whether <c>Score</c> takes calls without credentials from anywhere (a public scoring endpoint; default false).</summary>
    public bool AnonymousScore { get; set; }

    /// <summary>Whether <c>/metrics</c> on the HTTP port is open to anyone who reaches it (a cluster's scraper without the token; default false).</summary>
    public bool MetricsOpen { get; set; }

    /// <summary>What this engine presents when it calls another (a worker its parameter server, a worker another worker).</summary>
    public ClientSecurityOptions Client { get; set; } = new();

    /// <summary>Whether calls can authenticate at all (a token or a client certificate is configured).</summary>
    public bool HasCredentials => Tokens.Count > 0 || ScopedTokens.Count > 0 || Tls.ClientCertificates != ClientCertificates.None;
}

/// <summary>A bearer token and the scopes it grants, section <c>Inference:Security:ScopedTokens:N</c>.</summary>
public sealed class ScopedToken
{
    public string? Token { get; set; }

    /// <summary>Comma-separated: score, features, ingest, admin, sync.</summary>
    public string? Scopes { get; set; }
}

/// <summary>The gRPC endpoint's TLS, section <c>Inference:Security:Tls</c>. Off unless a certificate is given.</summary>
public sealed class TlsOptions
{
    /// <summary>The server certificate: a PEM file (with <see cref="Key"/>, or holding the key too) or a PKCS#12 (.pfx/.p12) file.</summary>
    public string? Certificate { get; set; }

    /// <summary>The PEM private key of <see cref="Certificate"/> when it is in a separate file.</summary>
    public string? Key { get; set; }

    /// <summary>The password of a PKCS#12 certificate or of an encrypted PEM key.</summary>
    public string? Password { get; set; }

    public ClientCertificates ClientCertificates { get; set; } = ClientCertificates.None;

    /// <summary>PEM certificate(s) of the authority client certificates must chain to; required with client certificates (no publicly trusted one is taken).</summary>
    public string? ClientCa { get; set; }

    /// <summary>The scopes a verified client certificate grants, comma-separated (default: every scope).</summary>
    public string ClientCertificateScopes { get; set; } = "score,features,ingest,admin,sync";

    public bool Enabled => !string.IsNullOrWhiteSpace(Certificate);
}

/// <summary>What the engine presents as a client, section <c>Inference:Security:Client</c>.</summary>
public sealed class ClientSecurityOptions
{
    /// <summary>The bearer token sent on every call to another engine.</summary>
    public string? Token { get; set; }

    /// <summary>PEM certificate(s) of the authority that signed the servers' certificates (a private CA or a self-signed one); unset: the system's trust store.</summary>
    public string? Ca { get; set; }

    /// <summary>A client certificate for mutual TLS (PEM with <see cref="Key"/>, or PKCS#12).</summary>
    public string? Certificate { get; set; }

    public string? Key { get; set; }

    public string? Password { get; set; }
}
